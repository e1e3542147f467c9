#!/usr/bin/env bash
# Run an algorithm image against a local job folder laid out like /opt/ml, the way SageMaker runs it.
#
#   scripts/run-local.sh kmeans JOB_DIR train          # image algobox-kmeans:<version>-cpu
#   scripts/run-local.sh kmeans JOB_DIR serve          # then: curl localhost:8080/ping
#   scripts/run-local.sh --image my/img:tag JOB_DIR serve --port 9090
#
# JOB_DIR is bind-mounted at /opt/ml:
#   JOB_DIR/input/config/{hyperparameters,inputdataconfig,resourceconfig}.json
#   JOB_DIR/input/data/<channel>/...     training data
#   JOB_DIR/model/                       written by train, read by serve
#   JOB_DIR/output/failure               written when training fails
# Missing model/ and output/ folders are created. `train` exits with the container's exit status.
#
# Options: --image IMAGE | --variant cpu|gpu (default cpu) | --version V | --port P (serve, default 8080)
#          --gpu (pass the GPUs: docker --gpus all, podman --device nvidia.com/gpu=all)
#          --name NAME | -- ENGINE_RUN_ARGS...
# Environment: CONTAINER_ENGINE (docker or podman; default docker when its daemon answers, else podman)
set -euo pipefail

PROG=run-local
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image="" variant=cpu version="" port=8080 gpu=0 name="" extra=() positional=()
while [ $# -gt 0 ]; do
    case "$1" in
        --image) shift; image="${1:?--image IMAGE}";;
        --variant) shift; variant="${1:?--variant cpu|gpu}";;
        --version) shift; version="${1:?--version V}";;
        --port) shift; port="${1:?--port P}";;
        --gpu) gpu=1;;
        --name) shift; name="${1:?--name NAME}";;
        -h|--help) usage;;
        --) shift; extra=("$@"); break;;
        -*) die "unknown option $1 (see --help)";;
        *) positional+=("$1");;
    esac
    shift
done

if [ -n "$image" ]; then
    [ ${#positional[@]} -eq 2 ] || die "usage: run-local.sh --image IMAGE JOB_DIR train|serve"
    job="${positional[0]}" command="${positional[1]}"
else
    [ ${#positional[@]} -eq 3 ] || die "usage: run-local.sh ALGORITHM JOB_DIR train|serve"
    algorithm="${positional[0]}" job="${positional[1]}" command="${positional[2]}"
    [ -n "$version" ] || version="$(project_version)"
    image="${IMAGE_PREFIX:-algobox-}${algorithm//_/-}:${version}-${variant}"
fi
case "$command" in train|serve) ;; *) die "command must be train or serve, not $command";; esac
[ -d "$job" ] || die "job folder $job not found"
job="$(cd "$job" && pwd)"
if [ "$command" = train ] && [ ! -d "$job/input/config" ]; then
    die "$job/input/config/ is missing (hyperparameters.json, inputdataconfig.json, resourceconfig.json)"
fi
if [ "$command" = serve ] && [ ! -d "$job/model" ]; then
    die "$job/model/ is missing: train first"
fi
mkdir -p "$job/model" "$job/output"

ENGINE="$(detect_engine)"
args=(run --rm -v "$job:/opt/ml")
[ -n "$name" ] && args+=(--name "$name")
[ -t 0 ] && [ -t 1 ] && args+=(-it)
if [ "$command" = serve ]; then args+=(-p "$port:8080"); fi
if [ "$gpu" = 1 ]; then
    if [ "$ENGINE" = podman ]; then args+=(--device nvidia.com/gpu=all); else args+=(--gpus all); fi
fi
args+=("${extra[@]}" "$image" "$command")
printf '+ %s' "$ENGINE"; printf ' %q' "${args[@]}"; printf '\n'
# exec: Ctrl-C / SIGTERM reach the engine, which passes them to the container's PID 1 (the algorithm)
exec "$ENGINE" "${args[@]}"
