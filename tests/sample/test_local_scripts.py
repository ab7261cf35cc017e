"""The README's local flow on the bundled job, against the image built from this repository as it
is (the fork's own algorithm, hooks and data): train_local.sh, serve_local.sh, predict.sh."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
import requests

from support import REPO, SAMPLE_PAYLOAD, free_port, have_docker, require, wait_until

IMAGE = os.environ.get("TEST_SAMPLE_IMAGE", "sagemaker-byo:sample")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


@pytest.fixture(scope="module")
def image() -> str:
    require(have_docker(), "no Docker engine answers (`docker info` failed)")
    build = docker("build", "--network", "host", "-t", IMAGE, str(REPO), timeout=900, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return IMAGE


def test_local_test_scripts_train_serve_and_predict(image, tmp_path):
    """The README's local flow: train_local.sh, serve_local.sh and predict.sh against the image."""
    scripts = REPO / "local_test"
    train = subprocess.run([str(scripts / "train_local.sh"), image], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert (scripts / "test_dir" / "model" / "model.joblib").exists()

    port = str(free_port())
    name = f"byo-test-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "PORT": port, "CONTAINER_NAME": name}
    server = subprocess.Popen([str(scripts / "serve_local.sh"), image], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready():
            try:
                return requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False
        wait_until(ready, 60, interval=0.1, what="serve_local.sh to answer /ping")
        predict = subprocess.run([str(scripts / "predict.sh"), str(SAMPLE_PAYLOAD)], env=env,
                                 capture_output=True, text=True, timeout=60)
        assert predict.returncode == 0, predict.stderr
        labels = predict.stdout.splitlines()
        assert len(labels) == len(SAMPLE_PAYLOAD.read_text().splitlines())
        assert set(labels) <= {"setosa", "versicolor", "virginica"}
    finally:
        docker("stop", name, check=False)
        server.wait(timeout=60)

