"""A user of the SageMaker Python SDK (version 2) training on two instances, in local mode.

Run by tests/sdk/test_local_mode_multihost.py under the SDK's own Python, as

    python multihost_job.py WORKDIR

WORKDIR holds `training/` (CSV files) and `request.json` (the image, the hyperparameters, the
environment, the rows to predict, a free port). This script trains with
Estimator(instance_count=2).fit, deploys the model on one instance, predicts with the CSV
serializer, deletes the endpoint, and writes what it got to WORKDIR/result.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import host_network
from local_mode_job import ROLE, TELEMETRY_OFF, local_config
from sagemaker.deserializers import CSVDeserializer
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession
from sagemaker.serializers import CSVSerializer


def main(workdir: Path) -> None:
    request = json.loads((workdir / "request.json").read_text())
    (workdir / "containers").mkdir(exist_ok=True)
    host_network.record_containers(workdir / "containers.txt")
    host_network.poll_readiness_quickly()
    if host_network.wanted():
        host_network.use_host_network()

    session = LocalSession(sagemaker_config=TELEMETRY_OFF)
    session.config = local_config(workdir, request["endpoint_port"])
    estimator = Estimator(
        image_uri=request["image"], role=ROLE, instance_count=2, instance_type="local",
        hyperparameters=request["hyperparameters"], environment=request["environment"],
        output_path=f"file://{workdir / 'output'}", sagemaker_session=session,
    )
    estimator.fit({"training": f"file://{workdir / 'training'}"})
    result: dict = {"model_data": estimator.model_data}

    predictor = estimator.deploy(1, "local", wait=False, serializer=CSVSerializer(),
                                 deserializer=CSVDeserializer())
    try:
        result["csv"] = predictor.predict(request["rows"])
    finally:
        predictor.delete_endpoint()
    (workdir / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
