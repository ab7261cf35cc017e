#!/usr/bin/env bash
# Build the image and push it to Amazon ECR, creating the repository if it is missing.
#
#   ./build_and_push.sh [--platform PLATFORM] [--multi-arch] [--base BASE] [--scan-on-push] IMAGE [TAG]
#
# Pushes ACCOUNT.dkr.ecr.REGION.amazonaws.com/IMAGE:TAG (TAG defaults to latest) and, in a git
# checkout, the same image tagged with the commit. The image's labels record what it was built
# from: org.opencontainers.image.base.name and .base.digest (the base's registry digest, or its
# local image id where it has none) and .revision (the git commit). The account comes from
# `aws sts get-caller-identity`; the region from AWS_REGION, AWS_DEFAULT_REGION or
# `aws configure get region`, and the script stops if none gives one.
# Options (or the environment variables beside them):
#   --platform P   PLATFORM      target platform (default linux/amd64: SageMaker's x86 instances,
#                                also when building on Apple silicon)
#   --multi-arch   MULTI_ARCH=1  build linux/amd64 and linux/arm64 (Graviton) with docker buildx
#                                and push both under the same tags
#   --base B       BASE          the base image of both stages (default debian:bookworm-slim); pin
#                                it by digest: debian:bookworm-slim@sha256:... (docs/deploying.md)
#   --scan-on-push SCAN_ON_PUSH=1 turn on ECR's basic scanning of every image pushed to the
#                                repository, whether the script creates it or it exists already
#                                (enhanced scanning, Amazon Inspector: docs/deploying.md)
# Environment:
#   ECR_REGISTRY       push to this registry address instead of the account's ECR; the repository
#                      is still created in ECR (tests: a local registry and a local ECR stand-in)
#   AWS_ENDPOINT_URL   read by the AWS CLI itself: where its STS and ECR calls go (tests)
set -euo pipefail

usage="usage: build_and_push.sh [--platform PLATFORM] [--multi-arch] [--base BASE] [--scan-on-push] IMAGE [TAG]"
platform="${PLATFORM:-linux/amd64}"
multi_arch="${MULTI_ARCH:-0}"
base="${BASE:-debian:bookworm-slim}"
scan_on_push="${SCAN_ON_PUSH:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --platform) platform="${2:?$usage}"; shift 2 ;;
    --platform=*) platform="${1#--platform=}"; shift ;;
    --multi-arch) multi_arch=1; shift ;;
    --base) base="${2:?$usage}"; shift 2 ;;
    --base=*) base="${1#--base=}"; shift ;;
    --scan-on-push) scan_on_push=1; shift ;;
    -h | --help) echo "$usage"; exit 0 ;;
    --) shift; break ;;
    -*) echo "build_and_push.sh: unknown option $1" >&2; echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
image="${1:?$usage}"
tag="${2:-latest}"
here="$(cd "$(dirname "$0")" && pwd)"

die() {
  echo "build_and_push.sh: $*" >&2
  exit 1
}

# Everything that can be checked without AWS is checked first, so nothing is created in vain.
command -v aws >/dev/null || die "the AWS CLI is not installed (https://aws.amazon.com/cli/)"
command -v docker >/dev/null || die "docker is not installed (https://docs.docker.com/get-docker/)"
docker info >/dev/null 2>&1 || die "no Docker engine answers ('docker info' failed); start Docker and try again"
if [ "$multi_arch" = 1 ]; then
  docker buildx version >/dev/null 2>&1 ||
    die "--multi-arch (MULTI_ARCH=1) needs docker buildx, which this Docker does not have; install the buildx plugin (https://docs.docker.com/build/buildx/) or build one platform with --platform"
fi

# The base's digest, for the labels: the one in its name when it is named by digest; else the one
# its registry gave the local copy (RepoDigests, under the base's repository), and the build then
# names the base by that digest, so what is recorded is what is built on, by docker build or by
# buildx alike; else, for a base no registry has served (built locally), its image id.
if ! docker image inspect "$base" >/dev/null 2>&1; then
  docker pull --platform "$platform" "$base" >/dev/null ||
    die "the base image $base is not here and could not be pulled (--base, BASE)"
fi
familiar() { # Docker Hub's names as Docker shows them: docker.io/library/debian is debian
  local name="${1#docker.io/}"
  echo "${name#library/}"
}
base_digest=""
build_base="$base"
case "$base" in
  *@sha256:*) base_digest="${base##*@}" ;;
  *)
    base_repository="$base"
    case "${base##*/}" in *:*) base_repository="${base%:*}" ;; esac
    base_repository="$(familiar "$base_repository")"
    while read -r repo_digest; do
      if [ -n "$repo_digest" ] && [ "$(familiar "${repo_digest%@*}")" = "$base_repository" ]; then
        base_digest="${repo_digest##*@}"
        build_base="$repo_digest"
      fi
    done < <(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$base")
    ;;
esac
[ -n "$base_digest" ] || base_digest="$(docker image inspect --format '{{.Id}}' "$base")"
build_args=(--build-arg "BASE=$build_base"
  --label "org.opencontainers.image.base.name=$base"
  --label "org.opencontainers.image.base.digest=$base_digest")

region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
[ -n "$region" ] ||
  die "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or run 'aws configure set region REGION'"

errors="$(mktemp)"
trap 'rm -f "$errors"' EXIT
account="$(aws sts get-caller-identity --region "$region" --query Account --output text 2>"$errors")" ||
  die "no usable AWS credentials: 'aws sts get-caller-identity' failed (run 'aws configure' or set AWS_PROFILE): $(cat "$errors")"
registry="${ECR_REGISTRY:-$account.dkr.ecr.$region.amazonaws.com}"

# Basic scanning (--scan-on-push): ECR scans each image pushed for known vulnerabilities in its OS
# packages; set on a new repository as it is created, and on an existing one.
# (scanOnPush=false is ECR's default, so a repository is created the same way with or without it.)
scanning="scanOnPush=$([ "$scan_on_push" = 1 ] && echo true || echo false)"
if ! aws ecr describe-repositories --region "$region" --repository-names "$image" >/dev/null 2>&1; then
  echo "creating ECR repository $image in $region"
  aws ecr create-repository --region "$region" --repository-name "$image" \
    --image-scanning-configuration "$scanning" >/dev/null
elif [ "$scan_on_push" = 1 ]; then
  aws ecr put-image-scanning-configuration --region "$region" --repository-name "$image" \
    --image-scanning-configuration "$scanning" >/dev/null
fi
if [ "$scan_on_push" = 1 ]; then
  echo "ECR repository $image scans every image pushed (scanOnPush=true)"
fi
aws ecr get-login-password --region "$region" |
  docker login --username AWS --password-stdin "$registry"

tags=("$registry/$image:$tag")
if commit="$(git -C "$here" rev-parse --short=12 HEAD 2>/dev/null)"; then
  tags+=("$registry/$image:$commit")
  build_args+=(--label "org.opencontainers.image.revision=$(git -C "$here" rev-parse HEAD)")
  if [ -n "$(git -C "$here" status --porcelain 2>/dev/null)" ]; then
    echo "build_and_push.sh: warning: the work tree has uncommitted changes; the image is labelled and tagged with commit $commit all the same" >&2
  fi
fi
tag_args=()
for name in "${tags[@]}"; do tag_args+=(-t "$name"); done

if [ "$multi_arch" = 1 ]; then
  docker buildx build --platform linux/amd64,linux/arm64 "${build_args[@]}" "${tag_args[@]}" --push "$here"
else
  docker build --platform "$platform" "${build_args[@]}" "${tag_args[@]}" "$here"
  for name in "${tags[@]}"; do docker push "$name"; done
fi
echo "pushed: ${tags[*]}"
