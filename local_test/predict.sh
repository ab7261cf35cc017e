#!/usr/bin/env bash
# Send PAYLOAD to the local server's /invocations and print the answer.
# Usage: predict.sh PAYLOAD [CONTENT_TYPE]   (CONTENT_TYPE defaults to text/csv; PORT to 8080)
set -euo pipefail
payload="${1:?usage: predict.sh PAYLOAD [CONTENT_TYPE]}"
content_type="${2:-text/csv}"

curl --silent --show-error --fail-with-body \
  --data-binary "@$payload" -H "Content-Type: $content_type" \
  "http://localhost:${PORT:-8080}/invocations"
