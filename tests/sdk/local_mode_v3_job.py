"""What a user of the SageMaker Python SDK version 3 does with this image, in local mode.

Run by tests/sdk/test_local_mode_v3.py under v3's own Python (.venv-aws3), as

    python local_mode_v3_job.py WORKDIR

WORKDIR holds `training/`, `validation/` and `batch/` (CSV files), `request.json` (the image,
the hyperparameters, the rows to predict, two free ports) and `home/` (v3's telemetry opt-out).
Each step is written as v3's documentation writes it: ModelTrainer(training_mode=
Mode.LOCAL_CONTAINER).train(), ModelBuilder(mode=Mode.LOCAL_CONTAINER).build(), deploy_local()
with invoke(), and a Transformer in local mode over the model build() registered; and, because
deploy_local() cannot host this image, the same model behind v3's LocalSession endpoint, the
alternative docs/deploying.md gives. Where v3 would ask AWS in local mode, the job passes what avoids
it (SAGEMAKER_VALIDATE_ROLE=false, s3_model_data_url, job_name). A step that raises is recorded
(its exception's type and message) and the next one still runs, so the test can tell a bug of
the SDK's from one of the image's. Everything goes to WORKDIR/result.json. No AWS account is
involved: dummy credentials and region, local paths, telemetry off.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path

import docker.models.containers
import host_network_v3
from sagemaker.core.local.local_session import LocalSession
from sagemaker.core.transformer import Transformer
from sagemaker.serve.mode.function_pointers import Mode as ServeMode
from sagemaker.serve.model_builder import ModelBuilder
from sagemaker.train.configs import Compute, InputData
from sagemaker.train.model_trainer import Mode, ModelTrainer

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"  # never used in local mode, but asked for
MODEL_NAME = "sagemaker-byo-local"
TELEMETRY_OFF = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def record_containers(names_file: Path) -> None:
    """Append what identifies each container v3 starts to `names_file`, so the test can remove them
    even if this process dies (local mode stops its containers but never removes them): the
    folder of each compose file (its project's working_dir label) with `train` or `serve`, and
    the name of each container ModelBuilder starts through the Docker API."""

    def record(kind: str, what: str) -> None:
        with names_file.open("a") as names:
            names.write(f"{kind} {what}\n")

    run = docker.models.containers.ContainerCollection.run

    def recorded_run(self, *args, **kwargs):
        container = run(self, *args, **kwargs)
        record("container", container.name)
        return container

    serving = host_network_v3.image._SageMakerContainer._generate_compose_file

    def recorded_serving(self, command, *args, **kwargs):
        record(command, self.container_root)
        return serving(self, command, *args, **kwargs)

    training = host_network_v3.local_container._LocalContainer._generate_compose_file

    def recorded_training(self, *args, **kwargs):
        record("train", self.container_root)
        return training(self, *args, **kwargs)

    docker.models.containers.ContainerCollection.run = recorded_run
    host_network_v3.image._SageMakerContainer._generate_compose_file = recorded_serving
    host_network_v3.local_container._LocalContainer._generate_compose_file = recorded_training


def step(result: dict, name: str, run) -> None:
    """Run one step; record what it returned or what it raised."""
    try:
        result[name] = {"ok": True, **run()}
    except Exception as error:  # noqa: BLE001 - the test decides what each error means
        traceback.print_exc()
        result[name] = {"ok": False, "error": {"type": type(error).__name__, "message": str(error)}}


def train(workdir: Path, request: dict) -> dict:
    # Local mode names the job's compose project after this folder: a name of its own.
    root = Path(tempfile.mkdtemp(prefix="trainer-", dir=workdir))
    model_trainer = ModelTrainer(
        training_image=request["image"],
        training_mode=Mode.LOCAL_CONTAINER,
        compute=Compute(instance_type="local_cpu", instance_count=1),
        hyperparameters=request["hyperparameters"],
        input_data_config=[
            InputData(channel_name="training", data_source=str(workdir / "training")),
            InputData(channel_name="validation", data_source=str(workdir / "validation")),
        ],
        base_job_name="sagemaker-byo-local",
        local_container_root=str(root),
    )
    model_trainer.train()
    # What the job wrote stays under local_container_root (the current directory by default):
    # artifacts/model/ as the container left /opt/ml/model, and compressed_artifacts/model.tar.gz.
    return {"model_dir": str(root / "artifacts" / "model"),
            "model_data": str(root / "compressed_artifacts" / "model.tar.gz")}


def build(request: dict, model_dir: str) -> ModelBuilder:
    """The trained model for local hosting: the image and the model's folder, which local mode
    mounts at /opt/ml/model. s3_model_data_url names the same folder only because build() would
    otherwise ask AWS for a default S3 bucket (model_path is what local mode uses)."""
    model_builder = ModelBuilder(
        image_uri=request["image"],
        model_path=model_dir,
        s3_model_data_url=f"file://{model_dir}",
        role_arn=ROLE,
        mode=ServeMode.LOCAL_CONTAINER,
    )
    model_builder.build(model_name=MODEL_NAME)  # also registers the model with v3's LocalSession
    return model_builder


def csv_body(rows: list[list[float]]) -> str:
    return "".join(",".join(str(value) for value in row) + "\n" for row in rows)


def deploy_local(request: dict, model_builder: ModelBuilder) -> dict:
    """ModelBuilder's own local hosting, as v3's documentation writes it."""
    endpoint = model_builder.deploy_local(endpoint_name="sagemaker-byo-local", wait=True)
    try:
        response = endpoint.invoke(body=csv_body(request["rows"]), content_type="text/csv", accept="text/csv")
        return {"csv": response.body.read().decode()}
    finally:
        endpoint.delete()


def local_session(workdir: Path, port: int) -> LocalSession:
    session = LocalSession(sagemaker_config=TELEMETRY_OFF)
    session.config = {"local": {"serving_port": port, "container_root": str(workdir / "containers")}}
    return session


def local_session_endpoint(workdir: Path, request: dict) -> dict:
    """The same model hosted by v3's LocalSession (sagemaker.core.local), which runs the image
    with `serve` as SageMaker does, and answers invoke_endpoint."""
    session = local_session(workdir, request["endpoint_port"])
    client, runtime = session.sagemaker_client, session.sagemaker_runtime_client
    client.create_endpoint_config(EndpointConfigName=MODEL_NAME, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": MODEL_NAME, "InitialInstanceCount": 1, "InstanceType": "local"}])
    client.create_endpoint(EndpointName=MODEL_NAME, EndpointConfigName=MODEL_NAME)
    try:
        answers = {}
        for content_type, body in (("text/csv", csv_body(request["rows"])),
                                   ("application/json", json.dumps(request["rows"]))):
            response = runtime.invoke_endpoint(EndpointName=MODEL_NAME, Body=body, ContentType=content_type,
                                               Accept=content_type)
            answers[content_type] = response["Body"].read().decode()
        return answers
    finally:
        client.delete_endpoint(EndpointName=MODEL_NAME)


def transform(workdir: Path, request: dict) -> dict:
    """A batch transform of the model build() registered, as v3's documentation writes it, plus
    job_name: without it, transform() asks AWS (DescribeModel) for the model's image to name the job."""
    transformer = Transformer(
        model_name=MODEL_NAME,
        instance_count=1,
        instance_type="local",
        strategy="MultiRecord",
        accept="text/csv",
        assemble_with="Line",
        output_path=f"file://{workdir / 'transformed'}",
        sagemaker_session=local_session(workdir, request["transform_port"]),
    )
    transformer.transform(f"file://{workdir / 'batch'}", content_type="text/csv", split_type="Line",
                          job_name="sagemaker-byo-local-transform", wait=False, logs=False)
    return {"output_path": transformer.output_path}


def main(workdir: Path) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SageMaker's IAM role check (iam:SimulatePrincipalPolicy) is AWS's; the SDK's switch turns it off.
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    request = json.loads((workdir / "request.json").read_text())
    (workdir / "containers").mkdir(exist_ok=True)
    record_containers(workdir / "containers.txt")
    host_network_v3.poll_readiness_quickly()
    host_network_v3.no_registry_pulls()
    if host_network_v3.wanted():
        host_network_v3.use_host_network()

    result: dict = {}
    step(result, "train", lambda: train(workdir, request))
    if result["train"]["ok"]:
        model_dir = result["train"]["model_dir"]
        built: dict = {}
        step(result, "build", lambda: built.update(builder=build(request, model_dir)) or {})
        if result["build"]["ok"]:
            step(result, "deploy_local", lambda: deploy_local(request, built["builder"]))
            step(result, "local_session_endpoint", lambda: local_session_endpoint(workdir, request))
            step(result, "transform", lambda: transform(workdir, request))
    (workdir / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
