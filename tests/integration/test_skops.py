"""Models that run no code when loaded: the real `train` saves model.skops beside model.joblib, and
the real `serve` with MODEL_SERVER_MODEL_FORMAT=skops answers exactly what it answers from
model.joblib, loads a fork's own class only when the fork's predictor.py declares it in
TRUSTED_TYPES, and refuses any other type, on one model and on a multi-model endpoint, without
running the artifact's code.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import joblib
import pytest
import requests
import skops.io as sio

from forks import make_fork
from support import PAYLOAD, Server, copy_test_dir, have_nginx, require, run_train

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))  # serve imports trap_model as the artifact names it (PYTHONPATH)
import trap_model  # noqa: E402

SKOPS = {"MODEL_SERVER_MODEL_FORMAT": "skops"}
PROBABILITIES = {"X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"}

# A fork whose model is a class of its own, not scikit-learn's: it predicts the nearest class mean.
NEAREST = textwrap.dedent('''\
    """A fork whose model is its own class."""

    import numpy as np

    from sagemaker_byo import Algorithm


    class Nearest:
        def __init__(self, classes, means):
            self.classes = classes
            self.means = means

        def predict(self, features):
            rows = np.asarray(features, dtype=np.float64)
            distances = ((rows[:, None, :] - self.means[None, :, :]) ** 2).sum(axis=2)
            return self.classes[distances.argmin(axis=1)]


    def fit(params, task, features, target):
        rows = features.to_numpy(dtype=np.float64)
        classes = np.unique(target)
        return Nearest(classes, np.stack([rows[target == c].mean(axis=0) for c in classes]))


    ALGORITHMS = {"nearest": Algorithm({}, fit=fit, tasks=("classification",))}
''')


def answers(server: Server) -> list[tuple[int, str, bytes]]:
    """What the server answers to the tests' payload in each format, and for probabilities."""
    body = PAYLOAD.read_bytes()
    found = []
    for headers in ({"Accept": "text/csv"}, {"Accept": "application/json"}, {"Accept": "application/jsonlines"},
                    {"Accept": "text/csv", **PROBABILITIES}):
        response = server.invoke(body, **headers)
        found.append((response.status_code, response.headers["Content-Type"], response.content))
    return found


def serving(base: Path, **kwargs) -> Server:
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    return Server(base, **kwargs)


@pytest.fixture
def started():
    servers: list[Server] = []

    def start(server: Server, wait_ready: bool = True) -> Server:
        servers.append(server)
        return server.start(wait_ready=wait_ready)

    yield start
    for server in servers:
        server.stop()


def trap_folder(folder: Path, marker: Path) -> Path:
    """A model folder whose model.joblib and model.skops both hold trap_model.Trap."""
    folder.mkdir(parents=True)
    joblib.dump(trap_model.Trap(marker), folder / "model.joblib")
    (folder / "model.skops").write_bytes(sio.dumps(trap_model.Trap(marker)))
    return folder


def test_train_saves_model_skops_and_model_json_says_so_with_its_untrusted_types(trained_dir):
    model = trained_dir / "model"
    assert (model / "model.skops").is_file()
    description = json.loads((model / "model.json").read_text())
    assert description["skops"]["file"] == "model.skops"
    assert "sklearn.tree._tree.Tree" in description["skops"]["untrusted_types"]  # the image trusts it
    assert not list(model.glob(".*")), "no staging folder is left"


def test_serving_model_skops_answers_exactly_what_model_joblib_answers(trained_dir, tmp_path, started):
    skops_only = copy_test_dir(tmp_path / "ml")
    for name in ("model.skops", "model.json"):  # no model.joblib: skops mode cannot fall back to it
        shutil.copy(trained_dir / "model" / name, skops_only / "model" / name)
    joblib_answers = answers(started(serving(trained_dir)))
    skops_server = started(serving(skops_only, env=dict(SKOPS)))
    assert answers(skops_server) == joblib_answers
    assert all(status == 200 for status, _, _ in joblib_answers)
    assert "model.skops, trusted types only" in skops_server.log()


def test_skops_mode_refuses_an_artifact_that_runs_code_when_loaded_and_never_runs_it(tmp_path, started):
    base = copy_test_dir(tmp_path / "ml")
    shutil.rmtree(base / "model")
    marker = tmp_path / "marker"
    trap_folder(base / "model", marker)
    server = started(serving(base, env={**SKOPS, "PYTHONPATH": str(TESTS)}), wait_ready=False)
    server.wait_for_ping(503)
    assert "trap_model.Trap" in server.log() and "TRUSTED_TYPES" in server.log()
    assert server.invoke(PAYLOAD.read_bytes()).status_code == 503
    assert not marker.exists()
    joblib.load(base / "model" / "model.joblib")  # what joblib mode would have done: run its code
    assert marker.exists()


def test_a_fork_class_loads_only_once_the_fork_declares_it_in_trusted_types(tmp_path, started):
    fork = make_fork(tmp_path / "algo", NEAREST)
    base = copy_test_dir(tmp_path / "ml")
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"algorithm": "nearest"}))
    result = run_train(base, algo=fork)
    assert result.returncode == 0, result.stderr
    assert "algorithm.Nearest" in json.loads((base / "model" / "model.json").read_text())["skops"]["untrusted_types"]

    refused = started(serving(base, algo=fork, env=dict(SKOPS)), wait_ready=False)
    refused.wait_for_ping(503)
    assert "algorithm.Nearest" in refused.log() and "TRUSTED_TYPES in predictor.py" in refused.log()
    refused.stop()

    predictor = fork / "predictor.py"
    declared = predictor.read_text().replace('TRUSTED_TYPES: list[str] = []', 'TRUSTED_TYPES = ["algorithm.Nearest"]')
    assert declared != predictor.read_text()
    predictor.write_text(declared)
    by_joblib = answers(started(serving(base, algo=fork)))
    assert answers(started(serving(base, algo=fork, env=dict(SKOPS)))) == by_joblib
    assert by_joblib[0][0] == 200


def test_a_multi_model_endpoint_in_skops_mode_loads_trusted_models_and_refuses_others(trained_dir, tmp_path,
                                                                                      started):
    models = tmp_path / "models"
    shutil.copytree(trained_dir / "model", models / "tree")
    (models / "tree" / "model.joblib").unlink()  # skops mode loads model.skops, never model.joblib
    marker = tmp_path / "marker"
    trap_folder(models / "trap", marker)
    joblib_only = models / "joblib-only"
    shutil.copytree(trained_dir / "model", joblib_only)
    (joblib_only / "model.skops").unlink()
    server = started(serving(copy_test_dir(tmp_path / "ml"), env={
        **SKOPS, "SAGEMAKER_MULTI_MODEL": "true", "PYTHONPATH": str(TESTS)}))

    def load(name: str, folder: Path) -> requests.Response:
        return requests.post(f"{server.url}/models", json={"model_name": name, "url": str(folder)}, timeout=60)

    assert load("tree", models / "tree").status_code == 200
    answer = requests.post(f"{server.url}/models/tree/invoke", data=PAYLOAD.read_bytes(),
                           headers={"Content-Type": "text/csv", "Accept": "text/csv"}, timeout=30)
    assert answer.status_code == 200 and answer.content.count(b"\n") == len(PAYLOAD.read_text().splitlines())

    refused = load("trap", models / "trap")
    assert refused.status_code == 400
    assert "trap_model.Trap" in refused.text and "TRUSTED_TYPES" in refused.text
    assert not marker.exists()

    missing = load("joblib-only", joblib_only)
    assert missing.status_code == 404 and "model.skops" in missing.text
    listed = requests.get(f"{server.url}/models", timeout=10).json()
    assert [m["modelName"] for m in listed["models"]] == ["tree"]
