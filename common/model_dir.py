"""The model directory: /opt/ml/model as SageMaker unpacks it, or holding a model.tar.gz to unpack.

Archives are unpacked with bounds: at most MAX_MEMBERS entries and MAX_BYTES in total, regular files and
directories only, no absolute paths or ``..``, no links or devices. Members are copied out by hand (not with
``TarFile.extract``), so the same checks hold on every Python we claim (``filter=`` exists only from 3.11.4;
Debian bookworm's images run 3.11.2) and the bytes written are counted, not only the sizes the headers declare.
"""

import logging
import os
import shutil
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .errors import ClientError

log = logging.getLogger(__name__)

MAX_MEMBERS = 10_000
MAX_BYTES = 20 * 1024**3
COPY_CHUNK = 1 << 20


class ArchiveError(ClientError):
    """A model or backbone archive that is unsafe, over its bounds, or not a readable tar(.gz)."""


def _member_path(archive, destination, member):
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or ".." in name.parts:
        raise ArchiveError(f"{archive} has an unsafe path {member.name!r}")
    parts = [p for p in name.parts if p not in ("", ".")]
    target = destination.joinpath(*parts) if parts else destination
    resolved = os.path.realpath(target)
    root = os.path.realpath(destination)
    if resolved != root and not resolved.startswith(root + os.sep):
        raise ArchiveError(f"{archive} has a path {member.name!r} that leaves the destination")
    return target


def _copy(archive, tar, member, target, budget, max_bytes):
    """Copy one regular member; return the bytes written (never more than ``budget``)."""
    source = tar.extractfile(member)
    if source is None:
        raise ArchiveError(f"{archive} member {member.name!r} cannot be read")
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with source, open(target, "wb") as out:
        while True:
            chunk = source.read(COPY_CHUNK)
            if not chunk:
                break
            written += len(chunk)
            if written > budget:
                raise ArchiveError(f"{archive} unpacks to more than {max_bytes} bytes")
            out.write(chunk)
    os.chmod(target, 0o644)
    return written


def safe_extract(archive, destination, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES):
    """Extract a tar(.gz) refusing links, devices, path escapes and archives over the bounds."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    total = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for count, member in enumerate(tar, start=1):
                if count > max_members:
                    raise ArchiveError(f"{archive} has more than {max_members} entries")
                target = _member_path(archive, destination, member)
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isfile():
                    raise ArchiveError(f"{archive} has a link or special file {member.name!r}")
                if total + member.size > max_bytes:
                    raise ArchiveError(f"{archive} unpacks to more than {max_bytes} bytes")
                total += _copy(archive, tar, member, target, max_bytes - total, max_bytes)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive} is not a readable tar or tar.gz archive: {type(exc).__name__}: {exc}") from exc
    return destination


def resolve_model_dir(model_dir, target=None):
    """The directory holding the model files; unpacks a model.tar.gz found there into ``target`` (a new
    temporary directory by default; the caller removes it)."""
    model_dir = Path(model_dir)
    archive = model_dir / "model.tar.gz"
    if archive.is_file():
        target = Path(target) if target is not None else Path(tempfile.mkdtemp(prefix="algobox-model-"))
        log.info("Unpacking %s into %s", archive, target)
        try:
            return safe_extract(archive, target)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return model_dir


@contextmanager
def model_files(path):
    """``with model_files(path) as folder:`` the model's files, from a model directory (unpacked or holding
    model.tar.gz) or from the archive itself; an unpacked copy is removed on leaving."""
    path = Path(path)
    if path.is_file():
        if not tarfile.is_tarfile(path):
            raise ArchiveError(f"{path} is not a model directory or a tar(.gz) archive")
        with tempfile.TemporaryDirectory(prefix="algobox-model-") as tmp:
            yield safe_extract(path, Path(tmp))
        return
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    folder = resolve_model_dir(path)
    try:
        yield folder
    finally:
        if folder != path:
            shutil.rmtree(folder, ignore_errors=True)
