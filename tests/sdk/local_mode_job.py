"""What a user of the SageMaker Python SDK (version 2) does with this image, in local mode.

Run by tests/sdk/test_local_mode.py under the SDK's own Python (the SDK cannot share a virtual
environment with the image's pinned requirements), as

    python local_mode_job.py WORKDIR

WORKDIR holds `training/`, `validation/` and `batch/` (CSV files) and `request.json` (the image,
the hyperparameters, the rows to predict, two free ports). This script trains with
Estimator.fit, deploys, predicts with the CSV and the JSON serializers, deletes the endpoint, runs
a batch Transformer, and writes what it got to WORKDIR/result.json for the test to check. No AWS
account is involved: dummy credentials and region, file:// paths, local_code, telemetry off.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import host_network
from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession
from sagemaker.serializers import CSVSerializer, JSONSerializer

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"  # never used in local mode, but required
TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def local_config(workdir: Path, serving_port: int) -> dict:
    return {"local": {"local_code": True, "serving_port": serving_port,
                      "container_root": str(workdir / "containers")}}


def main(workdir: Path) -> None:
    request = json.loads((workdir / "request.json").read_text())
    (workdir / "containers").mkdir(exist_ok=True)
    host_network.record_containers(workdir / "containers.txt")
    host_network.poll_readiness_quickly()
    if host_network.wanted():
        host_network.use_host_network()

    session = LocalSession(sagemaker_config=TELEMETRY_OFF)
    session.config = local_config(workdir, request["endpoint_port"])
    result: dict = {}

    estimator = Estimator(
        image_uri=request["image"], role=ROLE, instance_count=1, instance_type="local",
        hyperparameters=request["hyperparameters"], output_path=f"file://{workdir / 'output'}",
        sagemaker_session=session,
    )
    estimator.fit({"training": f"file://{workdir / 'training'}", "validation": f"file://{workdir / 'validation'}"})
    result["model_data"] = estimator.model_data

    # deploy and transform wait for the container's /ping themselves; their own `wait` and `logs`
    # would ask AWS for the endpoint's status and the job's logs.
    predictor = estimator.deploy(1, "local", wait=False, serializer=CSVSerializer(),
                                 deserializer=CSVDeserializer())
    try:
        result["csv"] = predictor.predict(request["rows"])
        predictor.serializer, predictor.deserializer = JSONSerializer(), JSONDeserializer()
        result["json"] = predictor.predict(request["rows"])
    finally:
        predictor.delete_endpoint()

    # A port of its own: the endpoint's container may still be stopping.
    session.config = local_config(workdir, request["transform_port"])
    transformer = estimator.transformer(1, "local", strategy="MultiRecord", assemble_with="Line",
                                        accept="text/csv", output_path=f"file://{workdir / 'transformed'}")
    transformer.transform(f"file://{workdir / 'batch'}", content_type="text/csv", split_type="Line",
                          wait=False, logs=False)
    result["transform_output"] = transformer.output_path

    (workdir / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
