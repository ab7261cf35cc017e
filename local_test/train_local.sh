#!/usr/bin/env bash
# Train with IMAGE as SageMaker does (`docker run IMAGE train`), with local_test/test_dir as /opt/ml.
# The model lands in local_test/test_dir/model, a failure reason in local_test/test_dir/output/failure.
set -euo pipefail
image="${1:?usage: train_local.sh IMAGE}"
here="$(cd "$(dirname "$0")" && pwd)"

rm -rf "${here:?}/test_dir/model/"* "${here:?}/test_dir/output/"*
docker run --rm --network host -v "$here/test_dir:/opt/ml" "$image" train
