"""What the tests share besides fixtures: the repository's paths, the real `algo/train` and
`algo/serve` as subprocesses, and `require`, which skips a tier that cannot run here or fails it
where every tier must run (REQUIRE_ALL_TIERS=1, as CI sets).

The plumbing's tests never touch what a fork edits (`algo/algorithm.py`, `algo/predictor.py`,
`local_test/`): they train and serve `plumbing_algo()`, a copy of `algo/` with the tests' own
`algorithm.py` and `predictor.py` (tests/fixture_fork/), on the tests' own job (`JOB`).

Tests import these from `support`; the fixtures live in conftest.py (a module name pytest gives
every conftest.py, so nothing should be imported from there).
"""

from __future__ import annotations

import atexit
import csv
import functools
import importlib.util
import io
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
ALGO = REPO / "algo"
FIXTURE_FORK = REPO / "tests" / "fixture_fork"  # the tests' algorithm.py, predictor.py, job and payload
JOB = FIXTURE_FORK / "job"
PAYLOAD = FIXTURE_FORK / "payload.csv"
TEST_DIR = JOB  # its old name, for tests written on other branches before tests/fixture_fork
# The bundled sample, which only tests/sample/ reads: a fork changes it.
SAMPLE_JOB = REPO / "local_test" / "test_dir"
SAMPLE_PAYLOAD = REPO / "local_test" / "payload.csv"
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")

# Unit tests import the plumbing package from algo/, and `predictor` from the tests' own fork.
sys.path.insert(0, str(ALGO))
sys.path.insert(0, str(FIXTURE_FORK))


@functools.cache
def plumbing_algo() -> Path:
    """A copy of `algo/` with the tests' own `algorithm.py` and `predictor.py`: what the plumbing's
    tests train and serve, made once per test process and removed at its exit."""
    root = Path(tempfile.mkdtemp(prefix="plumbing-fork-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    algo = root / "algo"
    shutil.copytree(ALGO, algo, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("algorithm.py", "predictor.py"):
        shutil.copy(FIXTURE_FORK / name, algo / name)
    return algo


def import_sample(name: str) -> ModuleType:
    """The fork's own `algo/<name>.py` (only tests/sample/ does this), registered as module `name`
    so its models pickle; `import name` would find the tests' copy in tests/fixture_fork/."""
    spec = importlib.util.spec_from_file_location(name, ALGO / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


NOT_IN_IMAGE = {".git", "tests", "bench", "docs", "examples", "local_test"}  # not the image's


def plumbing_image_context(destination: Path) -> Path:
    """A Docker build context for the image the plumbing's tests run: the repository's Dockerfile
    and the files beside it (requirements, system packages), with `plumbing_algo()` as `algo/`."""
    destination.mkdir(parents=True)
    for path in REPO.iterdir():
        if path.name in NOT_IN_IMAGE or path.name == "algo" or (path.is_dir() and path.name.startswith(".")):
            continue
        if path.is_dir():
            shutil.copytree(path, destination / path.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, destination / path.name)
    shutil.copytree(plumbing_algo(), destination / "algo")
    return destination


def require_module(name: str, what: str):
    """`import name`, or skip the test module (fail it where every tier must run, as require)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("REQUIRE_ALL_TIERS") == "1":
            pytest.fail(f"{what} (REQUIRE_ALL_TIERS=1: this tier must run here)", pytrace=False)
        pytest.skip(what, allow_module_level=True)


def require(condition: bool, what: str) -> None:
    """Skip a test whose tier cannot run here, or fail it where every tier must run (CI)."""
    if condition:
        return
    if os.environ.get("REQUIRE_ALL_TIERS") == "1":
        pytest.fail(f"{what} (REQUIRE_ALL_TIERS=1: this tier must run here)")
    pytest.skip(what)


# Ports for the servers tests start: below the kernel's ephemeral range (32768 and up), so no
# client connection of this or another run takes one between the check and the server's bind,
# and in a block of their own per run (PORT_BLOCK_VARIABLE), so test runs side by side (CI runs
# the example forks two at a time) never hand out the same port: a test would else talk to
# another run's server.
PORT_BLOCK_VARIABLE = "BYO_TEST_PORT_BLOCK"
PORT_BLOCKS = 8
_block = int(os.environ.get(PORT_BLOCK_VARIABLE, "0")) % PORT_BLOCKS
PORTS = range(20000 + 1500 * _block, 20000 + 1500 * (_block + 1))
_next_port = itertools.count(random.randrange(len(PORTS)))


def free_port() -> int:
    """A port of this run's block that nothing listens on now, not handed out before by this run."""
    for _ in range(len(PORTS)):
        port = PORTS.start + next(_next_port) % len(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def wait_until(check, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def copy_test_dir(destination: Path, job: Path = JOB) -> Path:
    """A fresh /opt/ml with the tests' iris job (or `job`: config files and channels, no model)."""
    shutil.copytree(job, destination, ignore=shutil.ignore_patterns(".gitkeep"))
    for sub in ("model", "output"):
        (destination / sub).mkdir(exist_ok=True)
        for child in (destination / sub).iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    return destination


def host_env(base_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "MODEL_SERVER_"))}
    env["SAGEMAKER_BASE_DIR"] = str(base_dir)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # python3 is this venv's
    env.update(extra)
    return env


def run_train(base_dir: Path, timeout: float = 120, algo: Path | None = None,
              **env: str) -> subprocess.CompletedProcess:
    """The real `train` of the tests' fork (or of `algo`) against `base_dir` as /opt/ml."""
    return subprocess.run(
        [str((algo or plumbing_algo()) / "train")], env=host_env(base_dir, **env), capture_output=True, text=True,
        timeout=timeout,
    )


@dataclass
class Server:
    """The real `algo/serve` (nginx and gunicorn) on a free loopback port."""

    base_dir: Path
    nginx: bool = True
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    algo: Path = field(default_factory=plumbing_algo)  # a fork's copy of algo/ serves its own `serve`
    cwd: Path | None = None  # the working directory `serve` is started in (default: the tests')

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True) -> Server:
        self.log_path = self.base_dir.parent / f"serve-{self.port}.log"
        env = host_env(self.base_dir, SAGEMAKER_BIND_TO_PORT=str(self.port),
                       MODEL_SERVER_WORKERS=self.env.pop("MODEL_SERVER_WORKERS", "2"), **self.env)
        command = [str(self.algo / "serve")] + ([] if self.nginx else ["--no-nginx"])
        # Append mode: nginx opens /dev/stdout again, so every writer must append, not overwrite.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd)
        if wait_ready:
            self.wait_for_ping(200)
        return self

    def ping_status(self) -> int | None:
        try:
            return requests.get(f"{self.url}/ping", timeout=2).status_code
        except requests.ConnectionError:
            return None

    def wait_for_ping(self, status: int, timeout: float = 30) -> None:
        def check():
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            return self.ping_status() == status
        wait_until(check, timeout, what=f"/ping to answer {status}")

    def invoke(self, body, content_type: str = "text/csv", **headers) -> requests.Response:
        headers = {"Content-Type": content_type, **headers}
        return requests.post(f"{self.url}/invocations", data=body, headers=headers, timeout=90)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> int:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else 0


def have_nginx() -> bool:
    return shutil.which("nginx") is not None


def have_docker() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def bodies(rows) -> dict[str, bytes]:
    """`rows` (a 2-D array of numbers) as a body of each format: CSV, JSON, JSON Lines."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows.tolist())
    return {"text/csv": text.getvalue().encode(), "application/json": json.dumps(rows.tolist()).encode(),
            "application/jsonlines": "".join(json.dumps(row) + "\n" for row in rows.tolist()).encode()}


def answers(response, accept: str) -> list[list[float]]:
    """The rows of values a response answered in `accept` (several values per row)."""
    if accept == "text/csv":
        return [[float(v) for v in line.split(",")] for line in response.text.splitlines()]
    if accept == "application/json":
        return response.json()["predictions"]
    return [json.loads(line) for line in response.text.splitlines()]
