"""The built image, run as SageMaker runs it: `docker run IMAGE train` and `docker run IMAGE serve`.
The image is the repository's Dockerfile with the tests' own fork as its program
(support.plumbing_image_context), so a fork's algorithm, hooks and data change nothing here.

Needs a Docker engine; containers use the host network (this machine has no bridge).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from forks import GREEDY
from lockfiles import normalised, repository_lock
from support import PAYLOAD, copy_test_dir, free_port, plumbing_image_context, require, wait_until

IMAGE = os.environ.get("TEST_IMAGE", "sagemaker-byo:test")


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=check)


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def image(tmp_path_factory) -> str:
    require(docker_available(), "no Docker engine answers (`docker info` failed)")
    context = plumbing_image_context(tmp_path_factory.mktemp("image") / "context")
    build = subprocess.run(
        ["docker", "build", "--network", "host", "-t", IMAGE, str(context)],
        capture_output=True, text=True, timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return IMAGE


class Container:
    """A detached container, removed when the test ends."""

    def __init__(self, image: str, command: str | list[str] | None, base_dir: Path, *extra: str,
                 env: dict | None = None):
        """`command` None starts the image with no command, as some tools do."""
        self.name = f"byo-test-{uuid.uuid4().hex[:10]}"
        env_args = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
        docker("run", "-d", "--network", "host", "--name", self.name, "-v", f"{base_dir}:/opt/ml",
               *env_args, *extra, image, *([command] if isinstance(command, str) else command or []))

    def status(self) -> dict:
        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@pytest.fixture
def containers():
    started: list[Container] = []

    def start(*args, **kwargs) -> Container:
        container = Container(*args, **kwargs)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()


@pytest.fixture(scope="session")
def container_trained_dir(image, tmp_path_factory) -> Path:
    base = copy_test_dir(tmp_path_factory.mktemp("container") / "ml")
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "train", timeout=300)
    assert result.returncode == 0, result.stderr
    return base


def wait_ready(url: str, container: Container, timeout: float = 60) -> None:
    def ready():
        if not container.status()["Running"]:
            raise AssertionError(f"container exited:\n{container.logs()}")
        try:
            return requests.get(f"{url}/ping", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    wait_until(ready, timeout, interval=0.1, what="/ping 200 from the container")


def test_image_declares_bind_to_port_capability(image):
    labels = json.loads(docker("inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"


LIST_PACKAGES = "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)"


def test_every_package_in_the_image_is_pinned_exactly_in_requirements(image):
    """What pip pulls in unasked (a dependency of a dependency) could change with each rebuild."""
    pinned = {name: pin.version for name, pin in repository_lock().pins.items()}
    listing = docker("run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c", LIST_PACKAGES)
    installed = dict(line.split() for line in listing.stdout.splitlines())
    assert {normalised(name): version for name, version in installed.items()} == pinned


def test_lightgbm_finds_its_openmp_library_in_the_image(image):
    """LightGBM's wheel links libgomp, which the slim base lacks: without it the import fails."""
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c",
                    "import lightgbm, numpy; print(lightgbm.LGBMRegressor(n_estimators=2, verbose=-1)"
                    ".fit(numpy.eye(8), numpy.arange(8.0)).predict(numpy.eye(8)).shape)", check=False)
    assert result.returncode == 0 and result.stdout.strip() == "(8,)", result.stderr[-2000:]


PROBES = Path(__file__).parent / "probes"
PYARROW = "/opt/venv/lib/python3.11/site-packages/pyarrow"
# What the Dockerfile trims from pyarrow's wheel, as paths inside the pyarrow folder.
TRIMMED = ["libarrow_flight.so*", "libarrow_python_flight.so*", "_flight.*.so", "libarrow_s3.so*", "_s3fs.*.so",
           "_substrait.*.so", "libarrow_python.so", "libarrow_python.so.*.*.*", "libarrow_python_parquet_encryption.so",
           "libarrow_python_parquet_encryption.so.*.*.*", "_pyarrow_cpp_tests.*.so", "include/*", "includes/*",
           "src/*", "tests/*", "*.pyx", "*.pxd", "*.pxi"]
# Prints, for each trimmed module, whether importing it says pyarrow was built without it.
TRY_TRIMMED = """import importlib
for name, attribute in (("pyarrow.flight", None), ("pyarrow.substrait", None), ("pyarrow.fs", "S3FileSystem")):
    try:
        getattr(importlib.import_module(name), attribute or "__name__")
    except ImportError as e:
        print(name, attribute, "not built" in str(e))
"""
IMAGE_LIMIT_BYTES = 600_000_000  # issue 22: "the image stays at most 600 MB"


def run_probe(image: str, name: str, timeout: float = 180) -> dict:
    """Run tests/container/probes/<name> with the image's Python; what it printed last, as JSON."""
    result = docker("run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c",
                    (PROBES / name).read_text(), timeout=timeout, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_the_image_is_at_most_600_mb(image):
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    assert size <= IMAGE_LIMIT_BYTES, f"{size / 1e6:.0f} MB (what takes the space: bench/image_size.py)"


def test_pyarrow_reads_and_writes_parquet_hive_folders_csv_and_feather_in_the_image(image):
    found = run_probe(image, "pyarrow_formats.py")
    rows = [{"x": 1.5, "n": 1, "color": "red", "flag": True}, {"x": 2.5, "n": None, "color": "blue", "flag": False},
            {"x": None, "n": 3, "color": "red", "flag": True}]
    assert found["parquet"] == found["feather"] == found["ipc"] == rows
    assert found["pandas_parquet"] == {
        "values": {"x": [1.5, 2.5, None], "n": [1, None, 3], "color": ["red", "blue", "red"],
                   "flag": [True, False, True]},
        "dtypes": {"x": "float64", "n": "Int64", "color": "str", "flag": "bool"}}
    assert found["hive_dataset"] == [{"x": 1.0, "year": 2026, "month": 12}, {"x": 2.0, "year": 2026, "month": 12},
                                     {"x": 3.0, "year": 2025, "month": 1}]
    assert found["hive_pandas"]["values"] == {"x": [1.0, 2.0, 3.0], "year": [2026, 2026, 2025],
                                              "month": [12, 12, 1]}
    assert found["csv"] == {"types": ["float", "float", "string"],
                            "rows": [{"a": 1.0, "b": 2.5, "c": "007"}, {"a": 3.0, "b": None, "c": "x"}]}
    assert found["compute"] == {"sum": 4.0, "unique": ["red", "blue"]}
    assert found["local_files"] == ["cache.arrow", "cache.feather", "frame.parquet", "hive", "rows.csv",
                                    "table.parquet"]


def test_dask_dataframe_distributed_and_lightgbm_work_with_the_images_pyarrow(image):
    """Dask converts text columns to Arrow strings and reads Parquet with pyarrow; a worker process
    sends an Arrow table back; LightGBM's Dask estimator fits, as on several hosts."""
    found = run_probe(image, "dask_cluster.py")
    assert found == {"sums": {"blue": 1225, "green": 1275, "red": 2450}, "color_dtype": "string",
                     "table": [{"x": 1}, {"x": 2}], "predictions": 100, "workers": 1}


def test_the_image_holds_none_of_the_pyarrow_parts_the_project_never_loads(image):
    listing = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c",
                     f"cd {PYARROW} && find . -mindepth 1 | cut -c3-").stdout.split()
    assert "lib.cpython-311-x86_64-linux-gnu.so" in listing and "libarrow_substrait.so.2600" in listing
    assert [path for path in listing if any(fnmatch.fnmatch(path, pattern) for pattern in TRIMMED)] == []

    refused = docker("run", "--rm", "--network", "host", "--entrypoint", "python", image, "-c",
                     TRY_TRIMMED).stdout.splitlines()
    assert refused == ["pyarrow.flight None True", "pyarrow.substrait None True", "pyarrow.fs S3FileSystem True"]

    # Nothing kept links a removed library (scipy's wheel has a missing name of its own, unrelated).
    linked = docker("run", "--rm", "--network", "host", "--entrypoint", "sh", image, "-c",
                    "find /opt/venv -name '*.so*' -type f -exec ldd {} +", timeout=300, check=False).stdout
    missing = {line.split()[0] for line in linked.splitlines() if "not found" in line}
    assert {name for name in missing if name.startswith(("libarrow", "libparquet"))} == set()
    assert "libarrow.so.2600 => /opt/venv" in linked  # ldd did resolve pyarrow's libraries


def test_train_in_container_writes_model_and_metrics(container_trained_dir):
    model = joblib.load(container_trained_dir / "model" / "model.joblib")
    description = json.loads((container_trained_dir / "model" / "model.json").read_text())
    assert description["n_features"] == 4
    assert description["classes"] == ["setosa", "versicolor", "virginica"]
    assert list(model.classes_) == description["classes"]
    assert not (container_trained_dir / "output" / "failure").exists()


def test_train_in_container_prints_metrics_for_metric_definitions(image, tmp_path):
    base = copy_test_dir(tmp_path / "ml")
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "train", timeout=300)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^train:(accuracy|rmse)=", result.stdout, re.MULTILINE)  # whichever task the job is
    assert re.search(r"^validation:(accuracy|rmse)=", result.stdout, re.MULTILINE)


def test_bad_hyperparameter_fails_training_job_with_reason(image, tmp_path):
    base = copy_test_dir(tmp_path / "ml")
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"max_depth": "deep"}))
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "train",
                    timeout=300, check=False)
    assert result.returncode != 0
    reason = (base / "output" / "failure").read_text()
    assert reason.startswith("UserError:") and "max_depth" in reason
    assert not (base / "model" / "model.joblib").exists()


def test_sigterm_stops_training_running_as_pid_1(image, containers, tmp_path):
    """SIGTERM arrives in the middle of a fit, inside native code, with train as PID 1."""
    base = big_training_job(copy_test_dir(tmp_path / "ml"))
    container = containers(image, "train", base)
    def fitting():
        assert container.status()["Running"], container.logs()
        return "fit started" in container.logs()
    wait_until(fitting, 120, interval=0.1, what="the fit to start")
    docker("kill", "--signal", "TERM", container.name)
    wait_until(lambda: not container.status()["Running"], 10, interval=0.1, what="the container to stop")
    assert container.status()["ExitCode"] == 143
    assert "stopped" in (base / "output" / "failure").read_text().lower()
    assert not (base / "model" / "model.joblib").exists()


def test_serve_in_container_answers_ping_and_predicts_payload(image, containers, container_trained_dir):
    port = free_port()
    container = containers(image, "serve", container_trained_dir, env={"SAGEMAKER_BIND_TO_PORT": port})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)

    payload = PAYLOAD.read_bytes()
    answer = requests.post(f"{url}/invocations", data=payload, headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    model = joblib.load(container_trained_dir / "model" / "model.joblib")
    expected = model.predict(np.loadtxt(PAYLOAD, delimiter=",", ndmin=2))
    assert answer.text.splitlines() == list(expected)

    cases = [
        ("/invocations", b"1,2,3\n", "text/csv", 400),
        ("/invocations", b"1,2,x,4\n", "text/csv", 400),
        ("/invocations", b"", "text/csv", 400),
        ("/invocations", b"{}", "application/x-unknown", 415),
        ("/nothing-here", b"1,2,3,4", "text/csv", 404),
    ]
    for path, body, content_type, status in cases:
        response = requests.post(f"{url}{path}", data=body, headers={"Content-Type": content_type}, timeout=30)
        assert response.status_code == status, (path, body, response.text)
        assert "Traceback" not in response.text


def test_docker_stop_shuts_server_down_gracefully_with_exit_0(image, containers, container_trained_dir):
    port = free_port()
    container = containers(image, "serve", container_trained_dir, env={"SAGEMAKER_BIND_TO_PORT": port})
    wait_ready(f"http://127.0.0.1:{port}", container)
    docker("stop", "--time", "30", container.name, timeout=60)
    state = container.status()
    assert state["ExitCode"] == 0, container.logs()
    assert "server stopped" in container.logs()


def test_serve_runs_with_read_only_root_file_system(image, containers, container_trained_dir):
    port = free_port()
    container = containers(image, "serve", container_trained_dir, "--read-only", "--tmpfs", "/tmp",
                           env={"SAGEMAKER_BIND_TO_PORT": port})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    answer = requests.post(f"{url}/invocations", data=PAYLOAD.read_bytes(),
                           headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 200
    assert len(answer.text.splitlines()) == len(PAYLOAD.read_text().splitlines())


def test_the_image_answers_metrics_and_logs_json_with_inference_ids(image, containers, container_trained_dir):
    """As SageMaker's detailed observability scrapes it, on a read-only root file system."""
    port = free_port()
    container = containers(image, "serve", container_trained_dir, "--read-only", "--tmpfs", "/tmp",
                           env={"SAGEMAKER_BIND_TO_PORT": port, "SAGEMAKER_CONTAINER_LOG_FORMAT": "json"})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    for i in range(3):
        answer = requests.post(f"{url}/invocations", data=PAYLOAD.read_bytes(), timeout=30,
                               headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": f"ok-{i}"})
        assert answer.status_code == 200
    assert requests.post(f"{url}/invocations", data=b"1,2\n", headers={"Content-Type": "text/csv"},
                         timeout=30).status_code == 400

    answer = requests.get(f"{url}/metrics", timeout=2)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.text) for s in family.samples}
    counted = {dict(labels)["status"]: v for (name, labels), v in samples.items()
               if name == "sagemaker_byo_requests_total" and dict(labels)["route"] == "/invocations"}
    assert counted == {"200": 3, "400": 1}
    assert samples[("sagemaker_byo_rows_answered_total", ())] == 3 * len(PAYLOAD.read_text().splitlines())

    entries = [json.loads(line) for line in container.logs().splitlines() if line.strip()]
    ids = {e.get("inference_id") for e in entries if e["logger"] == "nginx.access"}
    assert {"ok-0", "ok-1", "ok-2"} <= ids


def test_random_forest_on_a_csv_with_header_and_text_trains_and_serves_in_container(image, containers, tmp_path):
    """A non-default algorithm on named columns with a text category: trained by `train`, served by `serve`."""
    base = copy_test_dir(tmp_path / "ml")
    shutil.rmtree(base / "input" / "data" / "validation")
    config = base / "input" / "config"
    (config / "inputdataconfig.json").write_text(
        json.dumps({"training": json.loads((config / "inputdataconfig.json").read_text())["training"]}))
    (config / "hyperparameters.json").write_text(json.dumps(
        {"algorithm": "random_forest", "n_estimators": "20", "header": "true", "target": "label"}))
    rng = np.random.default_rng(0)
    colors = rng.choice(["red", "green", "blue"], 150)
    sizes = rng.normal(size=150).round(3)
    labels = np.where((colors == "red") | (sizes > 0.5), "yes", "no")
    rows = [f"{label},{size},{color}" for label, size, color in zip(labels, sizes, colors, strict=True)]
    training = base / "input" / "data" / "training"
    for path in training.iterdir():  # the job's own rows make way for this table
        path.unlink()
    (training / "data.csv").write_text("label,size,color\n" + "\n".join(rows) + "\n")

    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "train", timeout=300)
    assert result.returncode == 0, result.stderr
    description = json.loads((base / "model" / "model.json").read_text())
    assert description["algorithm"] == "random_forest"
    assert description["feature_names"] == ["size", "color"]
    assert description["categorical_features"] == ["color"]

    port = free_port()
    container = containers(image, "serve", base, env={"SAGEMAKER_BIND_TO_PORT": port})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    answer = requests.post(f"{url}/invocations", data=b"1.2,red\n-0.8,blue\n0.1,purple\n,green\n",
                           headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 200, answer.text
    predictions = answer.text.splitlines()
    assert len(predictions) == 4 and set(predictions) <= {"yes", "no"}
    assert predictions[:2] == ["yes", "no"]


# -- started with no command; the container's share of the machine -----------------------------

def model_only(trained: Path, destination: Path) -> Path:
    """An endpoint's /opt/ml: the model and nothing of the training job."""
    shutil.copytree(trained / "model", destination / "model")
    return destination


def big_training_job(base: Path, rows: int = 1_000_000) -> Path:
    """The tests' job with one large training file, so the fit takes seconds."""
    shutil.rmtree(base / "input" / "data" / "validation")
    config = base / "input" / "config" / "inputdataconfig.json"
    config.write_text(json.dumps({"training": json.loads(config.read_text())["training"]}))
    training = base / "input" / "data" / "training"
    for existing in training.iterdir():
        existing.unlink()
    rng = np.random.default_rng(0)
    np.savetxt(training / "big.csv", np.column_stack([rng.integers(0, 3, rows), rng.random((rows, 8))]),
               fmt="%.4f", delimiter=",")
    return base


def test_with_no_command_the_image_trains_where_a_training_job_is_configured(image, tmp_path):
    base = copy_test_dir(tmp_path / "ml")
    result = docker("run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, timeout=300)
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("start: no command given;") and first.endswith("running train"), first
    assert (base / "model" / "model.joblib").exists()
    assert "train:accuracy=" in result.stdout or "train:rmse=" in result.stdout


def test_with_no_command_the_image_serves_a_model_without_a_training_job(image, containers,
                                                                        container_trained_dir, tmp_path):
    base = model_only(container_trained_dir, tmp_path / "ml")
    port = free_port()
    container = containers(image, None, base, env={"SAGEMAKER_BIND_TO_PORT": port})
    wait_ready(f"http://127.0.0.1:{port}", container)
    first = container.logs().splitlines()[0]
    assert first.startswith("start: no command given;") and first.endswith("running serve"), first
    answer = requests.post(f"http://127.0.0.1:{port}/invocations", data=PAYLOAD.read_bytes(),
                           headers={"Content-Type": "text/csv"}, timeout=30)
    assert answer.status_code == 200
    assert len(answer.text.splitlines()) == len(PAYLOAD.read_text().splitlines())


@pytest.mark.parametrize(("command", "start"), [
    (None, ["--init"]), (None, []), ("train", ["--init"]), (["-c", "exec train"], ["--entrypoint", "sh"]),
    (["-c", "train"], ["--entrypoint", "bash"]),
], ids=["no-command-under-an-init", "no-command-as-pid-1", "train-under-an-init", "train-exec-by-sh",
        "train-under-bash"])
def test_sigterm_mid_fit_stops_training_with_exit_code_143_however_it_was_started(image, containers, tmp_path,
                                                                                   command, start):
    base = big_training_job(copy_test_dir(tmp_path / "ml"))
    container = containers(image, command, base, *start)

    def fitting():
        assert container.status()["Running"], container.logs()
        return "fit started" in container.logs()
    wait_until(fitting, 120, interval=0.1, what="the fit to start")
    docker("kill", "--signal", "TERM", container.name)
    wait_until(lambda: not container.status()["Running"], 10, interval=0.1, what="the container to stop")
    assert container.status()["ExitCode"] == 143, container.logs()
    assert "stopped" in (base / "output" / "failure").read_text().lower()
    assert not (base / "model" / "model.joblib").exists()


@pytest.mark.parametrize(("limits", "cpus", "source"), [
    (["--cpus", "1"], 1, "cpu.cfs_quota_us|cpu.max"),
    (["--cpuset-cpus", "0"], 1, "CPU affinity: 1 of"),
    (["--cpus", "0.5", "--cpuset-cpus", "0"], 1, "CPU affinity: 1 of"),
])
def test_serve_sizes_its_workers_to_the_containers_cpus(image, containers, container_trained_dir, tmp_path,
                                                        limits, cpus, source):
    port = free_port()
    container = containers(image, "serve", container_trained_dir, *limits, env={"SAGEMAKER_BIND_TO_PORT": port})
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, container)
    logs = container.logs()
    line = next(line for line in logs.splitlines() if "CPUs: " in line)
    assert f"CPUs: {cpus} (" in line and re.search(source, line), line
    assert f"workers: {cpus} (one per CPU)" in line, line
    parameters = requests.get(f"{url}/execution-parameters", timeout=5).json()
    assert parameters["MaxConcurrentTransforms"] == cpus
    assert f"with {cpus} workers x 1 native threads" in logs


def test_one_worker_given_every_cpu_gets_them_as_native_threads(image, containers, container_trained_dir):
    cpus = len(os.sched_getaffinity(0))
    port = free_port()
    container = containers(image, "serve", container_trained_dir,
                           env={"SAGEMAKER_BIND_TO_PORT": port, "MODEL_SERVER_WORKERS": "1"})
    wait_ready(f"http://127.0.0.1:{port}", container)
    assert f"with 1 workers x {cpus} native threads" in container.logs()


def test_serve_and_train_log_the_containers_memory_limit(image, containers, container_trained_dir, tmp_path):
    port = free_port()
    container = containers(image, "serve", container_trained_dir, "--memory", "768m",
                           env={"SAGEMAKER_BIND_TO_PORT": port})
    wait_ready(f"http://127.0.0.1:{port}", container)
    assert "memory: 0.75 GiB (cgroup v" in container.logs(), container.logs()
    base = copy_test_dir(tmp_path / "ml")
    result = docker("run", "--rm", "--network", "host", "--memory", "768m", "--cpus", "1",
                    "-v", f"{base}:/opt/ml", image, "train", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "memory: 0.75 GiB (cgroup v" in result.stderr
    assert "CPUs: 1 (" in result.stderr


def test_a_fit_killed_for_memory_in_the_container_leaves_a_failure_file_naming_the_limit(image, tmp_path):
    """`docker run --memory`: the kernel kills the fit (SIGKILL); train, PID 1, still says why."""
    base = copy_test_dir(tmp_path / "ml")
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"algorithm": "greedy"}))
    algorithm = tmp_path / "algorithm.py"
    algorithm.write_text(GREEDY)
    result = docker("run", "--rm", "--network", "host", "--memory", "400m", "--memory-swap", "400m",
                    "-v", f"{base}:/opt/ml", "-v", f"{algorithm}:/opt/program/algorithm.py:ro", image, "train",
                    timeout=300, check=False)
    assert result.returncode == 137, result.stderr[-3000:]
    failure = (base / "output" / "failure").read_text()
    assert re.match(r"UserError: the training process was killed for using more memory than the container's "
                    r"limit of 400 MiB \(cgroup v[12] memory\.(max|limit_in_bytes)\)", failure), failure
    assert not (base / "model" / "model.joblib").exists()
