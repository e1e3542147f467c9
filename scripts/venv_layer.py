"""The files an algorithm's image adds to the shared runtime's venv: its own image layer.

Used inside the image builds (Dockerfile.cpu / Dockerfile.gpu), with the venv's own Python:

    python venv_layer.py manifest /opt/algobox /opt/algobox/runtime-manifest.json
        records every path of the runtime venv (a file's size, mtime and mode; a symlink's target; directories):
        the algorithm's build starts from the very layers the manifest was taken on, so an untouched file
        keeps its mtime and anything pip writes gets a new one (no file is read, which matters for 2 GB venvs);
        a family layer (requirements-<family>.txt) writes the manifest of runtime + family into its layer
    python venv_layer.py layer /opt/algobox /opt/algobox/runtime-manifest.json /tmp/layer
        hard-links what is new or changed since the manifest to /tmp/layer/<same path>, so the algorithm's
        image is `FROM algobox-runtime` + `COPY --from=builder /tmp/layer/ /`. A runtime path that is gone
        is an error: a later layer cannot delete it (the runtime's pinned versions are pip constraints
        of the algorithm's install, so this only happens when something else removed files).
"""

import json
import os
import shutil
import sys

MANIFEST = "runtime-manifest.json"  # at the venv's root; never an entry of itself


def scan(root):
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            relative = os.path.relpath(path, root)
            if relative == MANIFEST:
                continue
            if os.path.islink(path):
                entries[relative] = "link:" + os.readlink(path)
            elif os.path.isdir(path):
                entries[relative] = "dir"
            elif os.path.isfile(path):
                info = os.stat(path)
                entries[relative] = f"file:{info.st_size}:{info.st_mtime_ns}:{info.st_mode & 0o7777:o}"
    return entries


def write_manifest(root, manifest):
    entries = scan(root)
    os.makedirs(os.path.dirname(os.path.abspath(manifest)), exist_ok=True)
    with open(manifest, "w", encoding="utf-8") as f:
        json.dump(entries, f, sort_keys=True, separators=(",", ":"))
    print(f"venv_layer: {len(entries)} paths of {root} recorded in {manifest}")


def copy_entry(source, target):
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    elif os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
        shutil.copystat(source, target)
    else:
        try:
            os.link(source, target)  # same file system in the build container: no copy
        except OSError:
            shutil.copy2(source, target)


def write_layer(root, manifest, destination):
    with open(manifest, encoding="utf-8") as f:
        before = json.load(f)
    now = scan(root)
    removed = sorted(path for path in before if path not in now)
    if removed:
        sys.exit(f"venv_layer: {len(removed)} paths of the shared runtime are gone from {root}, which an image "
                 f"layer cannot express (first: {removed[:10]}); keep the runtime's packages as they are")
    added = sorted(path for path in now if path not in before)
    changed = sorted(path for path in now if path in before and before[path] != now[path])
    target_root = os.path.join(destination, root.lstrip("/"))
    for path in added + changed:
        copy_entry(os.path.join(root, path), os.path.join(target_root, path))
    size = sum(os.path.getsize(os.path.join(root, p)) for p in added + changed
               if os.path.isfile(os.path.join(root, p)) and not os.path.islink(os.path.join(root, p)))
    print(f"venv_layer: {len(added)} paths added, {len(changed)} changed on top of the runtime "
          f"({size / 1e6:.1f} MB) -> {destination}")
    if changed:
        print("venv_layer: changed runtime paths: " + ", ".join(changed[:20]))


def main(argv):
    if len(argv) == 3 and argv[0] == "manifest":
        write_manifest(argv[1], argv[2])
    elif len(argv) == 4 and argv[0] == "layer":
        write_layer(argv[1], argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
