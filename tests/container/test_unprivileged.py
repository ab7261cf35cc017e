"""The image run as an unprivileged user on a read-only root file system:
`docker run --user 1000:1000 --read-only --tmpfs /tmp`, with a uid the image has no name for and
/opt/ml a host folder that user owns. Training and serving (one model and multi-model, /metrics,
SIGTERM) behave exactly as they do as root, which is how SageMaker runs the image; each test
compares with root's run. What the image writes goes to /opt/ml, /tmp and /dev/shm only.
"""
# ruff: noqa: F811 - test_image's fixtures (image, containers, container_trained_dir), used by name

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from test_image import big_training_job, container_trained_dir, containers, docker, image, wait_ready  # noqa: F401

from support import PAYLOAD, copy_test_dir, free_port, wait_until

UID = GID = 1000  # no name for it in the image's /etc/passwd
UNPRIVILEGED = ("--user", f"{UID}:{GID}", "--read-only", "--tmpfs", "/tmp")


def owned_by_the_user(base: Path) -> Path:
    """The host folder mounted as /opt/ml, the container user's, as SageMaker's is root's."""
    for path in [base, *base.rglob("*")]:
        if os.geteuid() == 0:
            os.chown(path, UID, GID)
        else:  # not root here: writable for everyone instead
            path.chmod(path.stat().st_mode | 0o777 if path.is_dir() else path.stat().st_mode | 0o666)
    return base


def run(image: str, command: str | None, base: Path, *extra: str, timeout: float = 300):
    return docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", *extra, image,
                  *([command] if command else []), timeout=timeout, check=False)


def description(base: Path) -> dict:
    found = json.loads((base / "model" / "model.json").read_text())
    found.pop("trained_at")
    return found


def post_csv(url: str, body: bytes, path: str = "/invocations", **headers: str) -> requests.Response:
    return requests.post(f"{url}{path}", data=body, headers={"Content-Type": "text/csv", **headers}, timeout=60)


def large_body() -> bytes:
    """Over nginx's 1 MB in-memory buffers both ways: nginx spools the request and the answer to
    files in serve's runtime folder, and the app scores it in chunks."""
    rows = PAYLOAD.read_bytes()
    return rows * (3 * 1024 * 1024 // len(rows) + 1)



@pytest.fixture(scope="session")
def user_trained_dir(image, tmp_path_factory) -> Path:
    """The tests' job, trained as the user on a read-only root (root's: container_trained_dir)."""
    base = owned_by_the_user(copy_test_dir(tmp_path_factory.mktemp("user") / "ml"))
    result = run(image, "train", base, *UNPRIVILEGED)
    assert result.returncode == 0, result.stderr[-3000:]
    return base


def test_the_user_has_no_name_in_the_image(image):
    result = docker("run", "--rm", "--network", "host", *UNPRIVILEGED, "--entrypoint", "sh", image, "-c",
                    "id -u; id -g; getent passwd 1000 || echo nameless", check=False)
    assert result.stdout.split() == [str(UID), str(GID), "nameless"], result.stdout + result.stderr


def test_as_a_user_on_a_read_only_root_train_writes_the_model_root_writes(user_trained_dir, container_trained_dir):
    assert description(user_trained_dir) == description(container_trained_dir)
    saved = sorted(p.name for p in (user_trained_dir / "model").iterdir())
    assert saved == ["model.joblib", "model.json", "model.skops"]
    assert all(p.stat().st_uid == UID for p in (user_trained_dir / "model").iterdir())
    assert not (user_trained_dir / "output" / "failure").exists()


def test_as_a_user_serve_answers_invocations_and_metrics_as_root_does(
        image, containers, container_trained_dir, user_trained_dir):
    urls, started = {}, {}
    for who, base, extra in (("root", container_trained_dir, ()), ("user", user_trained_dir, UNPRIVILEGED)):
        port = free_port()
        started[who] = containers(image, "serve", base, *extra,
                                  env={"SAGEMAKER_BIND_TO_PORT": port, "MODEL_SERVER_WORKERS": 2})
        urls[who] = f"http://127.0.0.1:{port}"
        wait_ready(urls[who], started[who])

    for body in (PAYLOAD.read_bytes(), large_body()):
        answers = {who: post_csv(url, body) for who, url in urls.items()}
        assert [a.status_code for a in answers.values()] == [200, 200], answers["user"].text[:300]
        assert answers["user"].text == answers["root"].text
        assert len(answers["user"].text.splitlines()) == body.count(b"\n")
    refused = {who: post_csv(url, b"1,2\n") for who, url in urls.items()}
    assert refused["user"].status_code == refused["root"].status_code == 400
    assert refused["user"].text == refused["root"].text

    metrics = requests.get(f"{urls['user']}/metrics", timeout=5)
    assert metrics.status_code == 200
    counted = {s.labels["status"]: s.value for family in text_string_to_metric_families(metrics.text)
               for s in family.samples
               if s.name == "sagemaker_byo_requests_total" and s.labels["route"] == "/invocations"}
    assert counted == {"200": 2, "400": 1}
    assert "Traceback" not in started["user"].logs()


def test_as_a_user_sigterm_stops_serve_with_exit_0(image, containers, user_trained_dir):
    port = free_port()
    container = containers(image, "serve", user_trained_dir, *UNPRIVILEGED, env={"SAGEMAKER_BIND_TO_PORT": port})
    wait_ready(f"http://127.0.0.1:{port}", container)
    assert post_csv(f"http://127.0.0.1:{port}", PAYLOAD.read_bytes()).status_code == 200
    docker("stop", "--time", "30", container.name, timeout=60)
    assert container.status()["ExitCode"] == 0, container.logs()
    assert "server stopped" in container.logs()


def test_as_a_user_a_multi_model_endpoint_loads_and_invokes_models(image, containers, container_trained_dir,
                                                                   tmp_path):
    base = tmp_path / "ml"
    for name in ("a", "b"):
        shutil.copytree(container_trained_dir / "model", base / "models" / name / "model")
    owned_by_the_user(base)
    port = free_port()
    container = containers(image, "serve", base, *UNPRIVILEGED, env={
        "SAGEMAKER_BIND_TO_PORT": port, "SAGEMAKER_MULTI_MODEL": "true", "MODEL_SERVER_WORKERS": 2})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    for name in ("a", "b"):
        loaded = requests.post(f"{url}/models", json={"model_name": name, "url": f"/opt/ml/models/{name}/model"},
                               timeout=60)
        assert loaded.status_code == 200, loaded.text
    assert [m["modelName"] for m in requests.get(f"{url}/models", timeout=5).json()["models"]] == ["a", "b"]

    model = joblib.load(container_trained_dir / "model" / "model.joblib")  # root's
    expected = list(model.predict(np.loadtxt(PAYLOAD, delimiter=",", ndmin=2)))
    for name in ("a", "b", "a"):
        answer = post_csv(url, PAYLOAD.read_bytes(), path=f"/models/{name}/invoke")
        assert answer.status_code == 200 and answer.text.splitlines() == expected, answer.text[:300]
    assert requests.delete(f"{url}/models/a", timeout=60).status_code == 200
    assert post_csv(url, PAYLOAD.read_bytes(), path="/models/a/invoke").status_code == 404
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 200
    docker("stop", "--time", "30", container.name, timeout=60)
    assert container.status()["ExitCode"] == 0, container.logs()
    assert "Traceback" not in container.logs()


def test_as_a_user_a_bad_hyperparameter_fails_the_job_with_its_reason(image, tmp_path):
    base = copy_test_dir(tmp_path / "ml")
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"max_depth": "deep"}))
    result = run(image, "train", owned_by_the_user(base), *UNPRIVILEGED)
    assert result.returncode == 1, result.stderr[-3000:]
    reason = (base / "output" / "failure").read_text()
    assert reason.startswith("UserError:") and "max_depth" in reason
    assert list((base / "model").iterdir()) == []


def test_as_a_user_sigterm_mid_fit_stops_training_with_exit_143(image, containers, tmp_path):
    base = owned_by_the_user(big_training_job(copy_test_dir(tmp_path / "ml")))
    container = containers(image, "train", base, *UNPRIVILEGED)

    def fitting():
        assert container.status()["Running"], container.logs()
        return "fit started" in container.logs()
    wait_until(fitting, 120, interval=0.1, what="the fit to start")
    docker("kill", "--signal", "TERM", container.name)
    wait_until(lambda: not container.status()["Running"], 10, interval=0.1, what="the container to stop")
    assert container.status()["ExitCode"] == 143, container.logs()
    assert "stopped" in (base / "output" / "failure").read_text().lower()
    assert list((base / "model").iterdir()) == []


def test_as_a_user_started_with_no_command_the_image_trains_a_forest_with_checkpoints(image, tmp_path):
    """`start` chooses `train`; the forest grows on joblib's threads and checkpoints to /opt/ml/checkpoints."""
    base = copy_test_dir(tmp_path / "ml")
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"algorithm": "random_forest", "n_estimators": "20", "checkpoint_steps": "5", "n_jobs": "-1"}))
    (base / "checkpoints").mkdir()
    result = run(image, None, owned_by_the_user(base), *UNPRIVILEGED)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines()[0].endswith("running train")
    assert sorted((base / "checkpoints").glob("checkpoint-*.joblib"))
    assert description(base)["algorithm"] == "random_forest"


def test_as_a_user_two_hosts_train_one_model_through_dask(image, tmp_path):
    """Two containers on the host network, algo-1 (the leader) and algo-2, LightGBM data-parallel."""
    hosts = ["algo-1", "algo-2"]
    dirs = {}
    for host in hosts:
        base = copy_test_dir(tmp_path / host)
        config = base / "input" / "config"
        resource = json.loads((config / "resourceconfig.json").read_text())
        resource.update(current_host=host, hosts=hosts, instance_groups=[{**resource["instance_groups"][0],
                                                                          "hosts": hosts}])
        (config / "resourceconfig.json").write_text(json.dumps(resource))
        (config / "hyperparameters.json").write_text(json.dumps({"algorithm": "lightgbm", "n_estimators": "20"}))
        dirs[host] = owned_by_the_user(base)
    network = [arg for host in hosts for arg in ("--add-host", f"{host}:127.0.0.1")]
    env = [arg for pair in {"SAGEMAKER_SCHEDULER_PORT": free_port(), "SAGEMAKER_CLUSTER_WAIT": 60,
                            "OMP_NUM_THREADS": 1}.items() for arg in ("-e", f"{pair[0]}={pair[1]}")]
    names = {host: f"byo-test-user-{host}-{os.getpid()}" for host in hosts}
    try:
        for host in hosts:
            docker("run", "-d", "--network", "host", "--name", names[host], "-v", f"{dirs[host]}:/opt/ml",
                   *UNPRIVILEGED, *network, *env, image, "train")
        codes = docker("wait", *names.values(), timeout=240).stdout.split()
        logs = "\n".join(docker("logs", name, check=False).stderr[-3000:] for name in names.values())
    finally:
        docker("rm", "-f", *names.values(), check=False)
    assert codes == ["0", "0"], logs
    assert description(dirs["algo-1"])["algorithm"] == "lightgbm"
    assert list((dirs["algo-2"] / "model").iterdir()) == []  # the leader alone writes the model


def test_serve_on_a_read_only_root_with_nothing_on_tmp_says_what_to_mount(image, user_trained_dir):
    result = run(image, "serve", user_trained_dir, "--user", f"{UID}:{GID}", "--read-only", timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "serve needs a writable folder" in result.stderr and "--tmpfs /tmp" in result.stderr
    assert "Traceback" not in result.stderr


def test_as_root_train_and_serve_write_nothing_in_the_image_outside_tmp(image, containers, tmp_path,
                                                                      container_trained_dir):
    """No bytecode, no nginx logs or temporary files under /var: what a read-only root would refuse
    silently (Python's bytecode) shows here in the container's own changes."""
    base = copy_test_dir(tmp_path / "ml")
    trainer = f"byo-test-diff-{os.getpid()}"
    try:
        trained = docker("run", "--network", "host", "--name", trainer, "-v", f"{base}:/opt/ml", image, "train",
                         timeout=300, check=False)
        assert trained.returncode == 0, trained.stderr[-3000:]
        changed = docker("diff", trainer).stdout.split("\n")
    finally:
        docker("rm", "-f", trainer, check=False)
    port = free_port()
    server = containers(image, "serve", container_trained_dir, env={"SAGEMAKER_BIND_TO_PORT": port})
    wait_ready(f"http://127.0.0.1:{port}", server)
    assert post_csv(f"http://127.0.0.1:{port}", large_body()).status_code == 200
    changed += docker("diff", server.name).stdout.split("\n")
    # /opt changes only as the parent of the mount point /opt/ml
    outside = [line for line in changed if line and line.split()[1] not in {"/tmp", "/opt", "/opt/ml"}
               and not line.split()[1].startswith("/tmp/")]
    assert outside == []
