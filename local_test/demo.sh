#!/usr/bin/env bash
# The main job end to end: build the image, train on test_dir (iris), serve, predict payload.csv,
# print the predictions, stop. Where no Docker engine answers, the same `train` and `serve`
# programs run on this host in the project's virtual environment instead.
# Usage: demo.sh [IMAGE]   (DEMO_MODE=host forces the host run; PORT defaults to 8080)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
image="${1:-sagemaker-byo:local}"
export PORT="${PORT:-8080}"
mode="${DEMO_MODE:-}"
log="${TMPDIR:-/tmp}/sagemaker-byo-demo-serve.log"
if [ -z "$mode" ]; then
  if docker info >/dev/null 2>&1; then mode=docker; else mode=host; fi
fi

wait_for_ping() {
  for _ in $(seq 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://localhost:$PORT/ping")" = 200 ]; then return 0; fi
    if ! kill -0 "$1" 2>/dev/null; then
      echo "demo: the server exited before it was ready; its log:" >&2
      tail -20 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "demo: the server did not answer /ping within 60 s" >&2
  return 1
}

if [ "$mode" = docker ]; then
  echo "demo: building $image"
  docker build --network host -t "$image" "$repo"
  echo "demo: training in the container"
  "$here/train_local.sh" "$image"
  echo "demo: serving on port $PORT (server log: $log)"
  name="sagemaker-byo-demo-$$"
  CONTAINER_NAME="$name" "$here/serve_local.sh" "$image" >"$log" 2>&1 &
  server=$!
  trap 'docker stop "$name" >/dev/null 2>&1 || true' EXIT
else
  echo "demo: no Docker engine answers; running train and serve on this host instead"
  make -C "$repo" venv >/dev/null
  # shellcheck disable=SC1091
  source "$repo/.venv/bin/activate"
  export SAGEMAKER_BASE_DIR="$here/test_dir"
  rm -rf "${here:?}/test_dir/model/"* "${here:?}/test_dir/output/"*
  echo "demo: training on the host"
  "$repo/algo/train"
  serve_args=()
  if ! command -v nginx >/dev/null; then
    echo "demo: nginx is not installed; gunicorn serves the port itself (serve --no-nginx)"
    serve_args=(--no-nginx)
  fi
  echo "demo: serving on port $PORT (server log: $log)"
  SAGEMAKER_BIND_TO_PORT="$PORT" "$repo/algo/serve" ${serve_args[@]+"${serve_args[@]}"} >"$log" 2>&1 &
  server=$!
  trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
fi

wait_for_ping "$server"
echo "demo: predictions for local_test/payload.csv:"
"$here/predict.sh" "$here/payload.csv" text/csv
echo "demo: done; stopping the server"
