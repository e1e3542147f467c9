# What scripts/build-images.sh, run-local.sh and push-ecr.sh share; sourced by each (not run on its own):
#   PROG=run-local; . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# ROOT is the repository's root. die/note prefix their message with $PROG.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() { echo "$PROG: $*" >&2; exit 2; }
note() { echo "$PROG: $*" >&2; }

usage() {  # the calling script's header comment (line 2 up to `set -euo`), as --help prints it
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
}

detect_engine() {
    if [ -n "${CONTAINER_ENGINE:-}" ]; then echo "$CONTAINER_ENGINE"; return; fi
    if command -v docker >/dev/null 2>&1 && timeout 10 docker info >/dev/null 2>&1; then echo docker; return; fi
    if command -v podman >/dev/null 2>&1; then echo podman; return; fi
    echo docker
}

project_version() {  # pyproject.toml's version (0.0.0 where it has none)
    local version
    version="$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"][^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n1)"
    echo "${version:-0.0.0}"
}
