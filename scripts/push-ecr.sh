#!/usr/bin/env bash
# Push algorithm images (built by scripts/build-images.sh) to Amazon ECR.
#
#   scripts/push-ecr.sh kmeans                            # algobox-kmeans:<version>-cpu
#   scripts/push-ecr.sh --variant all --region eu-west-1 all
#   scripts/push-ecr.sh --dry-run --account 123456789012 --region us-east-1 kmeans
#
# For each image: creates the ECR repository if it is missing (scan on push), logs the engine in with
# `aws ecr get-login-password | <engine> login`, tags <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>
# and pushes it. The repository name is the local image name (algobox-kmeans), the tag is kept.
#
# Options:
#   --account ID       default: `aws sts get-caller-identity`
#   --region R         default: $AWS_REGION, $AWS_DEFAULT_REGION, then `aws configure get region`
#   --variant cpu|gpu|all (default cpu)    --version V (default: pyproject.toml's)
#   --repository-prefix P   prefix for the ECR repository names (e.g. team/ -> team/algobox-kmeans)
#   --dry-run          print every command (aws and engine) without running any
# Environment: CONTAINER_ENGINE (docker or podman), IMAGE_PREFIX (default algobox-)
set -euo pipefail

PROG=push-ecr
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

account="" region="" variant_opt=cpu version="" repo_prefix="" dry_run=0 algorithms=()
while [ $# -gt 0 ]; do
    case "$1" in
        --account) shift; account="${1:?--account ID}";;
        --region) shift; region="${1:?--region R}";;
        --variant) shift; variant_opt="${1:?--variant cpu|gpu|all}";;
        --version) shift; version="${1:?--version V}";;
        --repository-prefix) shift; repo_prefix="${1:?--repository-prefix P}";;
        --dry-run) dry_run=1;;
        -h|--help) usage;;
        -*) die "unknown option $1 (see --help)";;
        *) algorithms+=("$1");;
    esac
    shift
done
[ ${#algorithms[@]} -gt 0 ] || algorithms=(all)

show() { printf '+'; printf ' %q' "$@"; printf '\n'; }
run() { show "$@"; [ "$dry_run" = 1 ] || "$@"; }

ENGINE="$(detect_engine)"

if [ -z "$region" ]; then
    region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
fi
if [ -z "$region" ]; then
    show aws configure get region
    if [ "$dry_run" = 0 ]; then region="$(aws configure get region || true)"; fi
    [ -n "$region" ] || { [ "$dry_run" = 1 ] && region=REGION; } || die "no region: pass --region or set AWS_REGION"
fi
if [ -z "$account" ]; then
    show aws sts get-caller-identity --query Account --output text
    if [ "$dry_run" = 1 ]; then account=ACCOUNT_ID
    else account="$(aws sts get-caller-identity --query Account --output text)" || die "aws sts get-caller-identity failed"
    fi
fi
domain=amazonaws.com
case "$region" in cn-*) domain=amazonaws.com.cn;; esac
registry="$account.dkr.ecr.$region.$domain"

# the same tags build-images.sh gives
mapfile -t tags < <(VERSION="$version" scripts/build-images.sh --print-tags --variant "$variant_opt" \
    ${version:+--version "$version"} "${algorithms[@]}")
[ ${#tags[@]} -gt 0 ] || die "no images to push"

if [ "$dry_run" = 1 ]; then
    echo "+ aws ecr get-login-password --region $region | $ENGINE login --username AWS --password-stdin $registry"
else
    aws ecr get-login-password --region "$region" | "$ENGINE" login --username AWS --password-stdin "$registry"
fi

for local_tag in "${tags[@]}"; do
    repo="${repo_prefix}${local_tag%%:*}"
    tag="${local_tag#*:}"
    if [ "$dry_run" = 0 ]; then
        "$ENGINE" image inspect "$local_tag" >/dev/null 2>&1 || die "image $local_tag not found: build it with scripts/build-images.sh"
    fi
    show aws ecr describe-repositories --region "$region" --repository-names "$repo"
    if [ "$dry_run" = 1 ] || ! aws ecr describe-repositories --region "$region" --repository-names "$repo" >/dev/null 2>&1; then
        run aws ecr create-repository --region "$region" --repository-name "$repo" \
            --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE
    fi
    run "$ENGINE" tag "$local_tag" "$registry/$repo:$tag"
    run "$ENGINE" push "$registry/$repo:$tag"
    [ "$dry_run" = 1 ] || echo "pushed $registry/$repo:$tag"
done
