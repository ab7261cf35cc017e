#!/usr/bin/env bash
# Serve the model in local_test/test_dir/model with IMAGE as SageMaker does (`docker run IMAGE serve`).
# Listens on PORT (default 8080); MODEL_SERVER_WORKERS and MODEL_SERVER_TIMEOUT pass through.
# Ctrl-C (or `docker stop sagemaker-byo-serve`) stops it gracefully.
set -euo pipefail
image="${1:?usage: serve_local.sh IMAGE}"
here="$(cd "$(dirname "$0")" && pwd)"
port="${PORT:-8080}"

env_args=(-e "SAGEMAKER_BIND_TO_PORT=$port")
for name in MODEL_SERVER_WORKERS MODEL_SERVER_TIMEOUT SAGEMAKER_CONTAINER_LOG_LEVEL; do
  if [ -n "${!name:-}" ]; then env_args+=(-e "$name=${!name}"); fi
done

exec docker run --rm --network host --name "${CONTAINER_NAME:-sagemaker-byo-serve}" \
  -v "$here/test_dir:/opt/ml" "${env_args[@]}" "$image" serve
