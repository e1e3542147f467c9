#!/usr/bin/env bash
# Build the container image of one, several or all algorithms in containers/, for CPU and/or GPU.
#
#   scripts/build-images.sh kmeans                  # algobox-kmeans:<version>-cpu
#   scripts/build-images.sh --variant all all       # every algorithm, cpu and gpu
#   CONTAINER_ENGINE=podman scripts/build-images.sh --variant gpu kmeans pca
#
# Tags: ${IMAGE_PREFIX:-algobox-}<algorithm, _ -> ->:<version>-<variant>, version from pyproject.toml
# (e.g. algobox-image-classification-tensorflow:0.1.0-gpu). --print-tags lists them without building.
# Every algorithm's image is the shared runtime image plus one layer of its own: first (once per variant)
# algobox-runtime-build:<version>-<variant> (Python, pip, requirements-runtime.txt's pins; build only) and
# algobox-runtime:<version>-<variant> (the same venv without pip: the base of every algorithm's image) are
# built from the same Dockerfile (--target runtime-build / runtime), then the algorithms on top of them.
# An algorithm whose requirements include `-r ../../requirements-<family>.txt` (torch) builds on that
# family's images instead, algobox-runtime-<family>-build / algobox-runtime-<family> (--target family-build /
# family), built once per run on top of the runtime's, so the family's packages are installed once.
#
# Options:
#   --variant cpu|gpu|all   (default cpu)          --version V     (default: pyproject.toml's version)
#   --network MODE          build network, e.g. host (podman behind a proxy / without a bridge)
#   --no-pip-config         do not hand this machine's pip settings to the build (see below)
#   --print-tags            only print the tags that would be built
#   --no-runtime            do not rebuild the runtime images: build on the ones this engine has
#   --dry-run               print the build commands without running them
#   -- ARGS...              passed to `<engine> build` as is
# Environment:
#   CONTAINER_ENGINE        docker or podman (default: docker when its daemon answers, else podman)
#   BASE_IMAGE              base image for both Dockerfiles (default: the Dockerfile's pinned debian slim)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS (URLs), PIP_TRUSTED_HOST, TORCH_INDEX_URL
#   CA_BUNDLE               a CA bundle (PEM file) pip must trust inside the build
#   WHEELS_DIR              a directory of wheels handed to the build as --find-links
#   HTTP_PROXY, HTTPS_PROXY, NO_PROXY (and lower case): passed as build args when set
#
# Unless --no-pip-config, the build gets its packages the way this machine's pip does: `pip config`'s
# index-url, http(s) extra-index-urls, cert, proxy and constraint are passed on, and the wheels in its
# find-links directories are hard-linked into the build-context folder .build-context/ (gitignored).
# file:// indexes cannot be seen from inside a build and are skipped (with a note).
set -euo pipefail

PROG=build-images
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
CONTEXT_EXTRA=.build-context

all_algorithms() {  # the one rule (common/spec.py): a folder of containers/ with a spec.py is an algorithm
    local dir name
    for dir in containers/*/; do
        dir="${dir%/}"; name="${dir#containers/}"
        case "$name" in _*|.*) continue;; esac
        [ -f "$dir/spec.py" ] && echo "$name"
    done
    return 0
}

image_tag() {  # algorithm variant -> tag
    local name="${1//_/-}"
    echo "${IMAGE_PREFIX:-algobox-}${name}:${VERSION}-$2"
}

variants=(cpu)
network=""
use_pip_config=1
print_only=0
build_runtime=1
dry_run=0
VERSION="${VERSION:-}"
algorithms=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --variant) shift; case "${1:-}" in
                cpu|gpu) variants=("$1");;
                all) variants=(cpu gpu);;
                *) die "--variant cpu|gpu|all";; esac;;
        --version) shift; VERSION="${1:?--version V}";;
        --network) shift; network="${1:?--network MODE}";;
        --no-pip-config) use_pip_config=0;;
        --print-tags) print_only=1;;
        --no-runtime) build_runtime=0;;
        --dry-run) dry_run=1;;
        -h|--help) usage;;
        --) shift; extra=("$@"); break;;
        -*) die "unknown option $1 (see --help)";;
        *) algorithms+=("$1");;
    esac
    shift
done
[ -n "$VERSION" ] || VERSION="$(project_version)"
if [ ${#algorithms[@]} -eq 0 ] || [ "${algorithms[0]}" = all ]; then
    mapfile -t algorithms < <(all_algorithms)
fi
[ ${#algorithms[@]} -gt 0 ] || die "no algorithm folders (with a spec.py) in containers/"
for alg in "${algorithms[@]}"; do
    [ -f "containers/$alg/spec.py" ] || die "containers/$alg is not an algorithm (no spec.py; algorithms: $(all_algorithms | xargs))"
    [ -f "containers/$alg/requirements.txt" ] || die "containers/$alg/requirements.txt not found: an image installs only what it lists"
done

if [ "$print_only" = 1 ]; then
    for alg in "${algorithms[@]}"; do for v in "${variants[@]}"; do image_tag "$alg" "$v"; done; done
    exit 0
fi

ENGINE="$(detect_engine)"
build_args=()
add_arg() { build_args+=(--build-arg "$1=$2"); }

# ---- what the build needs from this machine: proxies, index, CA bundle, local wheels ----
# `pip config list` prints key='value' lines (global.cert, install.find-links, :env:.find-links, ...)
pip_get() {  # option name -> values of every scope, space separated
    python3 -m pip config list 2>/dev/null | sed -n "s/^[^=]*\.$1='\(.*\)'\$/\1/p" | tr '\n' ' '
}
mkdir -p "$CONTEXT_EXTRA"
rm -rf "$CONTEXT_EXTRA/wheels" "$CONTEXT_EXTRA/ca-bundle.crt" "$CONTEXT_EXTRA/constraints.txt"
index_url="${PIP_INDEX_URL:-}"
extra_raw="${PIP_EXTRA_INDEX_URL:-}"
links_raw="${PIP_FIND_LINKS:-}"
ca_bundle="${CA_BUNDLE:-}"
constraint=""
pip_proxy=""
if [ "$use_pip_config" = 1 ] && python3 -m pip --version >/dev/null 2>&1; then
    first() { set -- $1; echo "${1:-}"; }
    [ -n "$index_url" ] || index_url="$(first "$(pip_get index-url)")"
    [ -n "$ca_bundle" ] || ca_bundle="$(first "$(pip_get cert)")"
    constraint="$(first "$(pip_get constraint)")"
    pip_proxy="$(first "$(pip_get proxy)")"
    extra_raw="$extra_raw $(pip_get extra-index-url)"
    links_raw="$links_raw $(pip_get find-links)"
fi
extra_index="" find_links_urls="" wheel_dirs=()
[ -n "${WHEELS_DIR:-}" ] && wheel_dirs+=("$WHEELS_DIR")
for url in $extra_raw; do
    case " $extra_index " in *" $url "*) continue;; esac
    case "$url" in
        http://*|https://*) extra_index="${extra_index:+$extra_index }$url";;
        *) note "skipping extra-index-url $url (not reachable from inside a build)";;
    esac
done
for link in $links_raw; do
    case "$link" in
        http://*|https://*) case " $find_links_urls " in *" $link "*) ;; *)
                find_links_urls="${find_links_urls:+$find_links_urls }$link";; esac;;
        file://*) wheel_dirs+=("${link#file://}");;
        *) wheel_dirs+=("$link");;
    esac
done
seen=" "
for dir in "${wheel_dirs[@]}"; do
    case "$seen" in *" $dir "*) continue;; esac
    seen="$seen$dir "
    [ -d "$dir" ] || { note "find-links $dir is not a directory, skipped"; continue; }
    mkdir -p "$CONTEXT_EXTRA/wheels"
    # hard links cost nothing; a copy where the context is on another file system
    find "$dir" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' \) \
        -exec sh -c 'for f; do ln -f "$f" "$0/" 2>/dev/null || cp -f "$f" "$0/"; done' "$CONTEXT_EXTRA/wheels" {} +
    note "wheels from $dir -> $CONTEXT_EXTRA/wheels/ ($(ls "$CONTEXT_EXTRA/wheels" | wc -l) files)"
done
if [ -n "$ca_bundle" ]; then
    [ -f "$ca_bundle" ] || die "CA bundle $ca_bundle not found"
    cp -f "$ca_bundle" "$CONTEXT_EXTRA/ca-bundle.crt"
    note "CA bundle $ca_bundle -> $CONTEXT_EXTRA/ca-bundle.crt"
fi
if [ -n "$constraint" ] && [ -f "$constraint" ]; then
    cp -f "$constraint" "$CONTEXT_EXTRA/constraints.txt"
    note "pip constraint $constraint -> $CONTEXT_EXTRA/constraints.txt"
fi
[ -n "$index_url" ] && add_arg PIP_INDEX_URL "$index_url"
[ -n "$extra_index" ] && add_arg PIP_EXTRA_INDEX_URL "$extra_index"
[ -n "$find_links_urls" ] && add_arg PIP_FIND_LINKS "$find_links_urls"
[ -n "${PIP_TRUSTED_HOST:-}" ] && add_arg PIP_TRUSTED_HOST "$PIP_TRUSTED_HOST"
[ -n "${BASE_IMAGE:-}" ] && add_arg BASE_IMAGE "$BASE_IMAGE"
for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -n "${!var:-}" ] && add_arg "$var" "${!var}"
done
if [ -n "$pip_proxy" ] && [ -z "${HTTPS_PROXY:-}${https_proxy:-}" ]; then
    add_arg HTTPS_PROXY "$pip_proxy"; add_arg HTTP_PROXY "$pip_proxy"
fi

# The PyPI index serves CUDA builds of torch; the CPU image adds the PyTorch CPU index unless it is
# unreachable from here (then the CPU wheel must come from find-links / WHEELS_DIR).
cpu_torch_index() {
    if [ -n "${TORCH_INDEX_URL+set}" ]; then echo "$TORCH_INDEX_URL"; return; fi
    local url=https://download.pytorch.org/whl/cpu
    if python3 - "$url" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/", timeout=8)
EOF
    then echo "$url"
    else note "$url is unreachable: CPU torch must come from find-links"; echo ""
    fi
}

run() {
    printf '+'; printf ' %q' "$@"; printf '\n'
    [ "$dry_run" = 1 ] || "$@"
}

torch_index_cpu=""
for v in "${variants[@]}"; do [ "$v" = cpu ] && torch_index_cpu="$(cpu_torch_index)"; done
net=()
[ -n "$network" ] && net=(--network "$network")
status=0
family_of() {  # algorithm variant -> its family (requirements-<family>.txt it includes), or "" for the runtime
    local req="containers/$1/requirements-$2.txt"
    [ -f "$req" ] || req="containers/$1/requirements.txt"
    sed -n 's|^[[:space:]]*-r[[:space:]]*\.\./\.\./requirements-\([A-Za-z0-9_-]*\)\.txt[[:space:]]*$|\1|p' "$req" \
        | grep -v '^runtime$' | head -n1 || true
}
base_tag() {  # family (or "") kind(build|"") variant -> the tag of the image an algorithm builds on
    local name="runtime${1:+-$1}${2:+-$2}"
    image_tag "$name" "$3"
}
base_args() {  # family variant -> the build args naming the images to build on
    echo "--build-arg" "RUNTIME_BUILD_IMAGE=$(base_tag "$1" build "$2")" \
         "--build-arg" "RUNTIME_IMAGE=$(base_tag "$1" "" "$2")"
}
build_base() {  # variant target tag args...
    local v="$1" target="$2" tag="$3" start=$SECONDS
    shift 3
    if run "$ENGINE" build "${net[@]}" -f "Dockerfile.$v" --target "$target" "$@" "${build_args[@]}" \
            --label "org.opencontainers.image.version=$VERSION" -t "$tag" "${extra[@]}" .; then
        [ "$dry_run" = 1 ] || note "built $tag in $((SECONDS - start)) s"
    else
        note "FAILED: $tag (the images built on it cannot be built)"; exit 1
    fi
}
for v in "${variants[@]}"; do
    [ "$build_runtime" = 1 ] || break
    read -r -a rt <<< "$(base_args "" "$v")"
    build_base "$v" runtime-build "$(base_tag "" build "$v")" "${rt[@]}"
    build_base "$v" runtime "$(base_tag "" "" "$v")" "${rt[@]}"
    families=" "
    for alg in "${algorithms[@]}"; do
        family="$(family_of "$alg" "$v")"
        [ -n "$family" ] || continue
        case "$families" in *" $family "*) continue;; esac
        families="$families$family "
        [ -f "requirements-$family.txt" ] || die "containers/$alg: requirements-$family.txt not found"
        fam=("${rt[@]}" --build-arg "FAMILY=$family" --build-arg "FAMILY_BUILD_IMAGE=$(base_tag "$family" build "$v")")
        if [ "$v" = cpu ]; then fam+=(--build-arg "TORCH_INDEX_URL=$torch_index_cpu"); fi
        build_base "$v" family-build "$(base_tag "$family" build "$v")" "${fam[@]}"
        build_base "$v" family "$(base_tag "$family" "" "$v")" "${fam[@]}"
    done
done
for alg in "${algorithms[@]}"; do
    for v in "${variants[@]}"; do
        tag="$(image_tag "$alg" "$v")"
        read -r -a rt <<< "$(base_args "$(family_of "$alg" "$v")" "$v")"
        args=("${build_args[@]}" "${rt[@]}")
        if [ "$v" = cpu ]; then args+=(--build-arg "TORCH_INDEX_URL=$torch_index_cpu"); fi
        start=$SECONDS
        if run "$ENGINE" build "${net[@]}" -f "Dockerfile.$v" --build-arg "ALGORITHM=$alg" "${args[@]}" \
                --label "org.opencontainers.image.version=$VERSION" -t "$tag" "${extra[@]}" .; then
            [ "$dry_run" = 1 ] || note "built $tag in $((SECONDS - start)) s"
        else
            note "FAILED: $tag"; status=1
        fi
    done
done
exit $status
