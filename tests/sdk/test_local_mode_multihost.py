"""The SageMaker Python SDK in local mode trains on two instances with a fork of the image: version 2's
Estimator(instance_count=2, instance_type="local") trains and deploys the one model they make,
version 3's ModelTrainer(compute=Compute(instance_type="local_cpu", instance_count=2)) trains it.

The fork's catalogue (below) has one algorithm that declares `distributed="data_parallel"`, so
the two containers form a Dask cluster and train LightGBM each on its share of the files. Under
SM_LOCAL_HOST_NETWORK=1 (CI: no bridge network) both containers share the host's loopback:
host_network.py maps both host names to 127.0.0.1, the leader's scheduler listens on a free port
this test picks (SAGEMAKER_SCHEDULER_PORT), and every other port is one the system picks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from test_local_mode import (
    HERE,
    IMAGE,
    docker,
    docker_compose_available,
    isolated_env,
    read_containers,
    sdk_python,
)
from test_local_mode_v3 import TELEMETRY_OFF, sdk3_python
from test_local_mode_v3 import containers as containers_v3

from support import REPO, free_port, require

JOB = HERE / "multihost_job.py"
JOB_V3 = HERE / "multihost_v3_job.py"
JOB_TIMEOUT = 420  # two training containers and an endpoint, on 2 shared cores
FORK_IMAGE = f"{IMAGE}-multihost-fork"
FILES = 2  # FullyReplicated: each of the two hosts reads one of them

FORK_CATALOGUE = '''\
"""A fork's catalogue: one algorithm, which trains on several hosts through LightGBM's Dask twin."""

from sagemaker_byo import Algorithm, Param, tabular


def boosted(params, task, features):
    from lightgbm import LGBMClassifier

    return tabular(features, LGBMClassifier(verbose=-1, min_child_samples=5, **params))


ALGORITHMS = {
    "boosted": Algorithm({"n_estimators": Param(int, 20, low=1), "num_leaves": Param(int, 7, low=2)},
                         build=boosted, tasks=("classification",), distributed="data_parallel"),
}
'''


def table(count: int, seed: int) -> pd.DataFrame:
    """A class (a/b/c) from two numbers and a colour, every class in every part."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(count, 3)).round(4)
    colour = rng.choice(["red", "green", "blue"], size=count)
    score = x[:, 0] + 0.5 * x[:, 1] + np.where(colour == "red", 1.0, 0.0)
    label = np.array(["a", "b", "c"])[np.digitize(score, [-0.5, 0.7])]
    return pd.DataFrame({"label": label, "x0": x[:, 0], "x1": x[:, 1], "x2": x[:, 2], "colour": colour})


def build_fork(workdir: Path) -> str:
    """The image with algo/algorithm.py replaced, as a fork builds it (the packages' layers are cached)."""
    context = workdir / "fork"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "requirements.txt", "system-packages.txt", "requirements-sbom.txt",
                 "sbom/combine.py"):
        (context / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, context / name)
    shutil.copytree(REPO / "algo", context / "algo", ignore=shutil.ignore_patterns("__pycache__"))
    (context / "algo" / "algorithm.py").write_text(FORK_CATALOGUE)
    build = subprocess.run(["docker", "build", "--network", "host", "-t", FORK_IMAGE, str(context)],
                           capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return FORK_IMAGE


@pytest.fixture(scope="module")
def fork_image(tmp_path_factory) -> str:
    require(docker_compose_available(), "local mode needs a Docker engine and docker compose")
    require(os.environ.get("SM_LOCAL_HOST_NETWORK") == "1" or docker("network", "inspect", "bridge").returncode == 0,
            "this Docker engine has no bridge network; set SM_LOCAL_HOST_NETWORK=1")
    return build_fork(tmp_path_factory.mktemp("fork"))


def job_folder(workdir: Path, image: str) -> list[list]:
    """The training files and request.json in `workdir`; returns the rows to predict."""
    (workdir / "training").mkdir()
    for part in range(FILES):
        table(300, seed=part).to_csv(workdir / "training" / f"part-{part}.csv", header=False, index=False)
    rows = table(12, seed=9).drop(columns="label").to_numpy().tolist()
    (workdir / "request.json").write_text(json.dumps({
        "image": image, "hyperparameters": {"algorithm": "boosted", "n_estimators": 15},
        # Both containers share the 2 cores: OpenMP threads that sleep while they wait, not spin.
        "environment": {"SAGEMAKER_SCHEDULER_PORT": str(free_port()), "SAGEMAKER_CLUSTER_WAIT": "120",
                        "OMP_WAIT_POLICY": "PASSIVE"},
        "rows": rows, "endpoint_port": free_port(),
    }))
    return rows


def run_job(python: Path, script: Path, workdir: Path, home: Path) -> str:
    log_path = workdir / "job.log"
    with log_path.open("w") as log:
        job = subprocess.run([str(python), str(script), str(workdir)], env=isolated_env(home),
                             stdout=log, stderr=subprocess.STDOUT, timeout=JOB_TIMEOUT)
    output = log_path.read_text(errors="replace")
    assert job.returncode == 0, f"the SDK job failed:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def two_hosts(fork_image, tmp_path_factory):
    """Train on two instances, deploy and predict once through the SDK v2; the tests check the results."""
    python = sdk_python()
    workdir = tmp_path_factory.mktemp("sdk-multihost")
    rows = job_folder(workdir, fork_image)
    (workdir / "home").mkdir()
    try:
        output = run_job(python, JOB, workdir, workdir / "home")
        result = json.loads((workdir / "result.json").read_text())
        with tarfile.open(result["model_data"].removeprefix("file://")) as archive:
            archive.extractall(workdir / "model", filter="data")
        yield {"result": result, "log": output, "rows": rows, "model_dir": workdir / "model",
               "containers": read_containers(workdir)}
    finally:
        for _, name in read_containers(workdir):
            docker("rm", "-f", name)


@pytest.fixture(scope="module")
def two_hosts_v3(fork_image, tmp_path_factory):
    """Train on two instances once through the SDK v3's ModelTrainer."""
    python = sdk3_python()
    workdir = tmp_path_factory.mktemp("sdk3-multihost")
    job_folder(workdir, fork_image)
    home = workdir / "home"
    (home / ".config" / "sagemaker").mkdir(parents=True)
    (home / ".config" / "sagemaker" / "config.yaml").write_text(TELEMETRY_OFF)
    (workdir / "containers").mkdir()
    try:
        output = run_job(python, JOB_V3, workdir, home)
        result = json.loads((workdir / "result.json").read_text())
        yield {"result": result, "log": output, "model_dir": Path(result["model_dir"]),
               "containers": containers_v3(workdir)}
    finally:
        for _, name in containers_v3(workdir):
            docker("rm", "-f", name)


def check_one_model_from_both_hosts(model_dir: Path, log: str) -> None:
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.joblib", "model.json", "model.skops"]
    description = json.loads((model_dir / "model.json").read_text())
    assert description["estimator"] == "LGBMClassifier"
    assert description["training_rows"] == 300 * FILES
    assert len(description["hosts"]) == 2 and sorted(description["hosts"].values()) == [300, 300]
    assert "every host joined" in log


def test_two_instances_make_one_model_trained_on_both_hosts_rows(two_hosts):
    check_one_model_from_both_hosts(two_hosts["model_dir"], two_hosts["log"])


def test_both_training_containers_exit_0_and_the_endpoint_is_stopped(two_hosts):
    commands = [command for command, _ in two_hosts["containers"]]
    assert commands == ["train", "train", "serve"]
    for _, name in two_hosts["containers"]:
        state = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
        assert state.stdout.split() == ["false", "0"], (name, state.stdout, state.stderr)


def test_the_endpoint_answers_what_the_model_predicts(two_hosts):
    model = joblib.load(two_hosts["model_dir"] / "model.joblib")
    columns = json.loads((two_hosts["model_dir"] / "model.json").read_text())["feature_names"]
    frame = pd.DataFrame(two_hosts["rows"], columns=columns)
    frame[columns[:3]] = frame[columns[:3]].astype(float)
    assert two_hosts["result"]["csv"] == [[label] for label in model.predict(frame)]


def test_v3_model_trainer_on_two_instances_makes_one_model_and_both_containers_exit_0(two_hosts_v3):
    check_one_model_from_both_hosts(two_hosts_v3["model_dir"], two_hosts_v3["log"])
    with tarfile.open(two_hosts_v3["result"]["model_data"]) as archive:
        assert {"model.json", "model.joblib"} <= {Path(name).name for name in archive.getnames()}
    names = [name for _, name in two_hosts_v3["containers"]]
    assert len(names) == 2
    for name in names:
        state = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name)
        assert state.stdout.split() == ["false", "0"], (name, state.stdout, state.stderr)
