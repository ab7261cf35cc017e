"""Forks that change the image: built with Docker as the fork's README says, then run as SageMaker
runs them. examples/xgboost adds a library (requirements.in, locked), trained and served in its image;
system-packages.txt adds Debian packages, installed in the image.

The builds reuse the cached layers of the plumbing's own image: only what the fork changes is
rebuilt (the virtual environment for a new requirement, the system layer for a new package).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from test_image import Container, docker, docker_available, wait_ready

from support import REPO, free_port, plumbing_algo, require

EXAMPLES = REPO / "examples"
BUILD_INPUTS = ("Dockerfile", ".dockerignore", "requirements.in", "requirements.txt", "system-packages.txt",
                "requirements-sbom.txt", "sbom/combine.py")


def build(tmp_path: Path, tag: str, change) -> str:
    """The image of a copy of the repository's build inputs after `change(copy)`."""
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    context = tmp_path / "context"
    context.mkdir()
    for name in BUILD_INPUTS:
        (context / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, context / name)
    shutil.copytree(plumbing_algo(), context / "algo")  # the tests' predictor, whatever the fork's
    change(context)
    result = subprocess.run(["docker", "build", "--network", "host", "-t", tag, str(context)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return tag


def apply_xgboost(repo: Path) -> None:
    """examples/xgboost/README.md's commands."""
    shutil.copy(EXAMPLES / "xgboost" / "algorithm.py", repo / "algo" / "algorithm.py")
    for name in ("requirements.in", "requirements.txt"):  # the input, and what make lock adds for it
        with open(repo / name, "a") as requirements:
            requirements.write("\n" + (EXAMPLES / "xgboost" / name).read_text())


@pytest.fixture(scope="module")
def xgboost_image(tmp_path_factory) -> str:
    return build(tmp_path_factory.mktemp("xgboost"), "sagemaker-byo:test-example-xgboost", apply_xgboost)


def fixture_job(base: Path, hyperparameters: dict) -> tuple[Path, np.ndarray]:
    """A /opt/ml with a headerless classification job of three features; returns it and some rows."""
    rng = np.random.default_rng(3)
    features = rng.normal(size=(300, 3)).round(3)
    labels = np.where(features[:, 0] + features[:, 1] > 0.3, "high", np.where(features[:, 2] > 0, "mid", "low"))
    for channel, rows in (("training", slice(0, 240)), ("validation", slice(240, 300))):
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True)
        with open(folder / "rows.csv", "w", newline="") as stream:
            csv.writer(stream).writerows([label, *values] for label, values in zip(labels[rows], features[rows],
                                                                                   strict=True))
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (base / "model").mkdir()
    (base / "output").mkdir()
    return base, features[:12]


def own_predictions(image: str, base: Path, rows: np.ndarray) -> list[str]:
    """The saved model's own predict, run in the image (the host need not have the library)."""
    script = ("import json, sys, joblib, numpy as np; sys.path.insert(0, '/opt/program'); "
              "model = joblib.load('/opt/ml/model/model.joblib'); "
              f"print(json.dumps([str(v) for v in model.predict(np.array({rows.tolist()!r}))]))")
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "python", "-c", script)
    return json.loads(result.stdout)


def test_the_xgboost_example_trains_and_serves_in_its_image(xgboost_image, tmp_path):
    hyperparameters = json.loads((EXAMPLES / "xgboost" / "hyperparameters.json").read_text())
    base, rows = fixture_job(tmp_path / "ml", hyperparameters)
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", xgboost_image, "train",
                    timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert not (base / "output" / "failure").exists()
    description = json.loads((base / "model" / "model.json").read_text())
    assert description["algorithm"] == "xgboost" and description["classes"] == ["high", "low", "mid"]
    assert description["metrics"]["validation"]["accuracy"] > 0.8
    want = own_predictions(xgboost_image, base, rows)

    port = free_port()
    container = Container(xgboost_image, "serve", base, env={"SAGEMAKER_BIND_TO_PORT": port})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, container)
        body = io.StringIO()
        csv.writer(body, lineterminator="\n").writerows(rows.tolist())
        for accept in ("text/csv", "application/json"):
            response = requests.post(f"{url}/invocations", data=body.getvalue(), timeout=30,
                                     headers={"Content-Type": "text/csv", "Accept": accept})
            assert response.status_code == 200, response.text
            answers = response.text.splitlines() if accept == "text/csv" else response.json()["predictions"]
            assert answers == want, accept
        response = requests.post(f"{url}/invocations", data=body.getvalue(), timeout=30,
                                 headers={"Content-Type": "text/csv", "Accept": "application/json",
                                          "X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"})
        assert response.status_code == 200, response.text
        assert [set(p) for p in response.json()["predictions"]] == [{"high", "low", "mid"}] * len(rows)
    finally:
        container.remove()


def test_system_packages_txt_lists_the_debian_packages_the_image_installs(tmp_path):
    def add_package(repo: Path) -> None:
        with open(repo / "system-packages.txt", "a") as packages:
            packages.write("\n# a fork's own: the YAML library a (fixture) wheel would load\n"
                           "libyaml-0-2   # trailing comment\n\n")

    image = build(tmp_path, "sagemaker-byo:test-system-packages", add_package)
    status = docker("run", "--rm", "--network", "host", image, "dpkg-query", "-W", "-f", "${Status}",
                    "libyaml-0-2")
    assert status.stdout == "install ok installed"
    loaded = docker("run", "--rm", "--network", "host", image, "python", "-c",
                    "import ctypes; ctypes.CDLL('libyaml-0.so.2'); print('loaded')")
    assert loaded.stdout.strip() == "loaded"
