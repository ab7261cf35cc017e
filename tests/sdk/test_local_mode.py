"""The SageMaker Python SDK (version 2) in local mode drives the built image (the tests' own fork as
its program, on the tests' iris job, as in tests/container) as SageMaker would:
Estimator.fit with file:// channels, deploy and predict with the SDK's CSV and JSON serializers,
and a batch Transformer over a folder of CSV files, split and assembled by line.

The SDK lives in its own virtual environment (AWS_VENV, default .venv-aws: botocore cannot share
one with the image's pinned python-dateutil), so `local_mode_job.py` runs under its Python and
writes what it got; these tests check that against the model's own predictions. Every request
that is not to 127.0.0.1 goes to a closed loopback proxy, so a stray AWS call fails at once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import joblib
import numpy as np
import pytest

from support import JOB as TEST_JOB
from support import REPO, free_port, plumbing_image_context, require

IMAGE = os.environ.get("TEST_IMAGE", "sagemaker-byo:test")
AWS_VENV = Path(os.environ.get("AWS_VENV", REPO / ".venv-aws"))
HERE = Path(__file__).resolve().parent
JOB = HERE / "local_mode_job.py"
JOB_TIMEOUT = 360  # training, an endpoint and a transform, each a container start on 2 cores

BATCH_SIZES = (12, 10, 8)  # rows of the validation channel, one CSV file each


def sdk_python() -> Path:
    python = AWS_VENV / "bin" / "python"
    require(python.exists(), f"the AWS tools' virtual environment {AWS_VENV} is missing "
                             f"(python3 -m venv .venv-aws && .venv-aws/bin/pip install -r requirements-aws.txt)")
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
                             capture_output=True, text=True, timeout=60)
    require(version.returncode == 0 and version.stdout.startswith("2."),
            f"{AWS_VENV} has no SageMaker Python SDK version 2 ({version.stdout.strip() or version.stderr[-200:]})")
    return python


def typed_hyperparameters() -> dict:
    """The tests' job's hyperparameters (tests/fixture_fork/job/) as a user writes them for the SDK, numbers
    as numbers: the generic Estimator (v2) hands SageMaker str(value) for each, v3 json.dumps."""
    def typed(value: str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    raw = json.loads((TEST_JOB / "input" / "config" / "hyperparameters.json").read_text())
    # The plumbing's own, a bool, an int and a null, so that the SDK's encoding of each type
    # reaches the container whatever the algorithm; the job file's values win.
    plumbing = {"header": False, "checkpoint_steps": 7, "target": None}
    return {**plumbing, **{name: typed(value) for name, value in raw.items()}}


def docker_compose_available() -> bool:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True,
                                                        timeout=30).returncode != 0:
        return False
    if shutil.which("docker-compose"):
        return True
    return subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def isolated_env(home: Path) -> dict[str, str]:
    """Dummy credentials and region, no user configuration, and no way out but loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SAGEMAKER_"))}
    env.update({
        "HOME": str(home),  # no ~/.sagemaker/config.yaml, ~/.aws or ~/.config/sagemaker of the user's
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(HERE), "PYTHONUNBUFFERED": "1", "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    })
    return env


@pytest.fixture(scope="module")
def sdk_run(tmp_path_factory):
    """Train, deploy, predict and transform once through the SDK; the tests below check the results."""
    python = sdk_python()
    require(docker_compose_available(), "local mode needs a Docker engine and docker compose "
                                        "(`docker info` failed, or neither docker-compose nor `docker compose`)")
    require(os.environ.get("SM_LOCAL_HOST_NETWORK") == "1" or docker("network", "inspect", "bridge").returncode == 0,
            "this Docker engine has no bridge network, which local mode uses as it is; "
            "set SM_LOCAL_HOST_NETWORK=1 to run local mode on the host network")
    workdir = tmp_path_factory.mktemp("sdk")
    context = plumbing_image_context(workdir / "context")  # the image with the tests' own fork
    build = subprocess.run(["docker", "build", "--network", "host", "-t", IMAGE, str(context)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    for channel in ("training", "validation"):
        shutil.copytree(TEST_JOB / "input" / "data" / channel, workdir / channel)
    validation = np.loadtxt(workdir / "validation" / "rows.csv", delimiter=",", dtype=str)
    features = validation[:, 1:].astype(float)
    (workdir / "batch").mkdir()
    batches, start = {}, 0
    for number, size in enumerate(BATCH_SIZES, 1):
        name = f"part-{number}.csv"
        batches[name] = features[start:start + size]
        np.savetxt(workdir / "batch" / name, batches[name], fmt="%g", delimiter=",")
        start += size
    rows = features[:10].tolist()
    (workdir / "request.json").write_text(json.dumps({
        "image": IMAGE, "hyperparameters": typed_hyperparameters(), "rows": rows,
        "endpoint_port": free_port(), "transform_port": free_port(),
    }))
    (workdir / "home").mkdir()

    log_path = workdir / "job.log"
    try:
        with log_path.open("w") as log:
            job = subprocess.run([str(python), str(JOB), str(workdir)], env=isolated_env(workdir / "home"),
                                 stdout=log, stderr=subprocess.STDOUT, timeout=JOB_TIMEOUT)
        output = log_path.read_text(errors="replace")
        assert job.returncode == 0, f"the SDK job failed:\n{output[-6000:]}"
        result = json.loads((workdir / "result.json").read_text())
        with tarfile.open(result["model_data"].removeprefix("file://")) as archive:
            archive.extractall(workdir / "model", filter="data")
        yield {"workdir": workdir, "result": result, "log": output, "rows": rows, "batches": batches,
               "model": joblib.load(workdir / "model" / "model.joblib"),
               "description": json.loads((workdir / "model" / "model.json").read_text()),
               "containers": read_containers(workdir)}
    finally:
        for _, name in read_containers(workdir):
            docker("rm", "-f", name)


def read_containers(workdir: Path) -> list[tuple[str, str]]:
    names = workdir / "containers.txt"
    if not names.exists():
        return []
    return [tuple(line.split()) for line in names.read_text().splitlines() if line.strip()]


def test_fit_decodes_hyperparameters_as_the_sdk_passes_them(sdk_run):
    sent = typed_hyperparameters()
    trained = sdk_run["description"]["hyperparameters"]
    assert {name: trained[name] for name in sent} == sent
    classes = getattr(sdk_run["model"], "classes_", None)
    if classes is not None:
        assert sdk_run["description"]["classes"] == [c.item() if hasattr(c, "item") else c for c in classes]
    assert re.search(r"validation:(accuracy|rmse)=", sdk_run["log"])  # what MetricDefinitions read


def test_endpoint_predicts_with_the_csv_serializer(sdk_run):
    expected = sdk_run["model"].predict(np.array(sdk_run["rows"]))
    assert sdk_run["result"]["csv"] == [[label] for label in expected]


def test_endpoint_predicts_with_the_json_serializer(sdk_run):
    expected = sdk_run["model"].predict(np.array(sdk_run["rows"]))
    assert sdk_run["result"]["json"] == {"predictions": list(expected)}


def test_transformer_writes_one_prediction_per_input_line(sdk_run):
    output = Path(sdk_run["result"]["transform_output"].removeprefix("file://"))
    assert sorted(p.name for p in output.iterdir()) == sorted(f"{name}.out" for name in sdk_run["batches"])
    for name, features in sdk_run["batches"].items():
        text = (output / f"{name}.out").read_text()
        # AssembleWith=Line ends each response with a newline of its own: one request per small file.
        assert text.rstrip("\n").split("\n") == list(sdk_run["model"].predict(features)), name


def test_local_mode_stops_every_container_it_started(sdk_run):
    commands = [command for command, _ in sdk_run["containers"]]
    assert commands == ["train", "serve", "serve"]  # fit, the endpoint, the transform
    for _, name in sdk_run["containers"]:
        state = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
        assert state.stdout.split() == ["false", "0"], (name, state.stdout, state.stderr)

