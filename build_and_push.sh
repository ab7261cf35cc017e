#!/usr/bin/env bash
# Build the image and push it to Amazon ECR, creating the repository if it is missing.
#
#   ./build_and_push.sh IMAGE [TAG]
#
# Pushes ACCOUNT.dkr.ecr.REGION.amazonaws.com/IMAGE:TAG (TAG defaults to latest) and, in a git
# checkout, the same image tagged with the commit. The account comes from
# `aws sts get-caller-identity`, the region from AWS_REGION, AWS_DEFAULT_REGION or
# `aws configure get region`, else us-east-1.
# Environment:
#   PLATFORM      target platform (default linux/amd64: SageMaker's x86 instances, also when
#                 building on Apple silicon)
#   MULTI_ARCH=1  build linux/amd64 and linux/arm64 (Graviton) with docker buildx and push both
#   ECR_REGISTRY  push to this registry address instead of the account's ECR (tests use a
#                 local registry)
set -euo pipefail

image="${1:?usage: build_and_push.sh IMAGE [TAG]}"
tag="${2:-latest}"
platform="${PLATFORM:-linux/amd64}"
here="$(cd "$(dirname "$0")" && pwd)"

die() {
  echo "build_and_push.sh: $*" >&2
  exit 1
}

command -v aws >/dev/null || die "the AWS CLI is not installed (https://aws.amazon.com/cli/)"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers; start Docker and try again"

account="$(aws sts get-caller-identity --query Account --output text 2>/dev/null)" ||
  die "no usable AWS credentials: 'aws sts get-caller-identity' failed (run 'aws configure' or set AWS_PROFILE)"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:-$(aws configure get region 2>/dev/null || true)}}"
region="${region:-us-east-1}"
registry="${ECR_REGISTRY:-$account.dkr.ecr.$region.amazonaws.com}"

if ! aws ecr describe-repositories --region "$region" --repository-names "$image" >/dev/null 2>&1; then
  echo "creating ECR repository $image in $region"
  aws ecr create-repository --region "$region" --repository-name "$image" >/dev/null
fi
aws ecr get-login-password --region "$region" |
  docker login --username AWS --password-stdin "$registry"

tags=("$registry/$image:$tag")
if commit="$(git -C "$here" rev-parse --short=12 HEAD 2>/dev/null)"; then
  tags+=("$registry/$image:$commit")
fi
tag_args=()
for name in "${tags[@]}"; do tag_args+=(-t "$name"); done

if [ "${MULTI_ARCH:-0}" = 1 ]; then
  docker buildx version >/dev/null 2>&1 ||
    die "MULTI_ARCH=1 needs docker buildx, which is not installed (https://docs.docker.com/build/buildx/)"
  docker buildx build --platform linux/amd64,linux/arm64 "${tag_args[@]}" --push "$here"
else
  docker build --platform "$platform" "${tag_args[@]}" "$here"
  for name in "${tags[@]}"; do docker push "$name"; done
fi
echo "pushed: ${tags[*]}"
