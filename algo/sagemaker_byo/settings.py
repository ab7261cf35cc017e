"""Every environment variable the container reads, with its default, in one place.

Paths are rooted at /opt/ml as SageMaker lays them out; SAGEMAKER_BASE_DIR moves the
root (tests and host runs use it). Read once, through `paths()` and `serving()`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import resources

# Names of the environment variables, with their defaults beside them.
BASE_DIR = "SAGEMAKER_BASE_DIR"  # default /opt/ml
LOG_LEVEL = "SAGEMAKER_CONTAINER_LOG_LEVEL"  # default INFO; a name or a number ("20")
BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"  # default 8080 (inference pipelines set it)
WORKERS = "MODEL_SERVER_WORKERS"  # default: the CPUs this container may use (resources.cpus)
TIMEOUT = "MODEL_SERVER_TIMEOUT"  # default 60 seconds, for nginx and gunicorn alike
BATCH = "SAGEMAKER_BATCH"  # "true" in a batch transform
MAX_PAYLOAD_IN_MB = "SAGEMAKER_MAX_PAYLOAD_IN_MB"  # default 6 (SageMaker's real-time limit)
DEFAULT_ACCEPT = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"  # default text/csv
INFERENCE_OUTPUT = "SAGEMAKER_INFERENCE_OUTPUT"  # "predictions" (default) or "probabilities"
RUNTIME_DIR = "SAGEMAKER_RUNTIME_DIR"  # default: a fresh folder under /tmp (sockets, nginx.conf)
PRELOAD = "MODEL_SERVER_PRELOAD"  # default true: load the model before forking (false if not fork-safe)
MULTI_MODEL = "SAGEMAKER_MULTI_MODEL"  # "true" on a multi-model endpoint: models come through POST /models
CLUSTER_WAIT = "SAGEMAKER_CLUSTER_WAIT"  # default 300 s: hosts resolving and joining a multi-host job
SCHEDULER_PORT = "SAGEMAKER_SCHEDULER_PORT"  # default 8786: the Dask scheduler's port on the leader
CHUNK_MB = "MODEL_SERVER_CHUNK_MB"  # default: from the memory limit, 1 to 8; 0 scores large bodies whole
METRICS = "MODEL_SERVER_METRICS"  # default true: record Prometheus metrics and answer GET /metrics
LOG_FORMAT = "SAGEMAKER_CONTAINER_LOG_FORMAT"  # default text; json: one JSON object per line
LOG_FORMATS = ("text", "json")
MODEL_FORMAT = "MODEL_SERVER_MODEL_FORMAT"  # default joblib (unpickling runs code); skops: trusted types only
MODEL_FORMATS = ("joblib", "skops")  # the default first
WARM_POOL_CACHE = "SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"  # set by SageMaker on a warm pool; unset: no cache

DEFAULT_BASE_DIR = "/opt/ml"
DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
DEFAULT_MAX_PAYLOAD_IN_MB = 6
DEFAULT_CLUSTER_WAIT = 300  # instances of one job start within minutes of each other
DEFAULT_SCHEDULER_PORT = 8786  # Dask's own default, as AWS's XGBoost container uses it
MAX_BATCH_PAYLOAD_IN_MB = 100  # SageMaker's ceiling for a batch transform mini-batch
MB = 1024 * 1024
MAX_PAYLOAD_IN_MB_CEILING = 1024  # asynchronous inference's 1 GB
# A CSV or JSON Lines body larger than one chunk is scored a chunk at a time (streaming.py). A
# chunk costs a worker about 20 times its size at its peak (decoded rows, predictions, answers):
# the default gives each worker at most 1/64 of the container's memory per chunk, 1 to 8 MB.
CHUNK_SHARE_OF_MEMORY = 64
MIN_CHUNK_MB, MAX_CHUNK_MB = 1, 8
SHUTDOWN_GRACE = 25  # seconds to finish in-flight requests after SIGTERM; SageMaker kills at 30
WORKER_TIMEOUT_MARGIN = 5  # gunicorn replaces a stuck worker this long after nginx gave up on it

# glibc's allocator, for the model server's processes, unless the environment sets them. By
# default it gives freed blocks over 128 KB (a threshold that only slides up later) back to the
# kernel, so a large request faults the pages of its arrays in afresh: about 500 page faults and
# 1.6 ms of CPU for a 10,000-row CSV in a fresh process (bench/request_path.py --glibc-defaults).
# Freed memory below these sizes stays in the worker for the next request.
ALLOCATOR_DEFAULTS = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * MB),  # blocks above this still come from, and go back to, the kernel
    "MALLOC_TRIM_THRESHOLD_": str(64 * MB),  # free memory a worker keeps at most
}


class SettingsError(ValueError):
    """An environment variable holds a value the container cannot use."""


@dataclass(frozen=True)
class Paths:
    """The /opt/ml layout of a training job or an endpoint."""

    base: Path

    @property
    def input_config(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        return self.input_config / "hyperparameters.json"

    @property
    def input_data_config(self) -> Path:
        return self.input_config / "inputdataconfig.json"

    @property
    def resource_config(self) -> Path:
        return self.input_config / "resourceconfig.json"

    @property
    def checkpoint_config(self) -> Path:
        return self.input_config / "checkpointconfig.json"

    @property
    def data(self) -> Path:
        return self.base / "input" / "data"

    def channel(self, name: str) -> Path:
        return self.data / name

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def failure(self) -> Path:
        return self.output / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.base / "checkpoints"


def paths(env: dict[str, str] | None = None) -> Paths:
    env = os.environ if env is None else env
    return Paths(Path(env.get(BASE_DIR) or DEFAULT_BASE_DIR))


@dataclass(frozen=True)
class Serving:
    """What the model server needs to know, derived once so nginx, gunicorn and the app agree."""

    port: int
    workers: int
    timeout: int
    batch: bool
    max_payload_mb: int
    default_accept: str
    inference_output: str
    log_level: int
    preload: bool
    threads: int = 1  # native threads per worker (OpenMP, BLAS, n_jobs): workers x threads <= CPUs
    multi_model: bool = False  # models loaded and unloaded at run time (sagemaker_byo.serving.multimodel)
    chunk_mb: int = MAX_CHUNK_MB  # large CSV and JSON Lines bodies are scored in chunks of this size; 0: whole
    metrics: bool = True  # record Prometheus metrics and answer GET /metrics
    log_format: str = "text"  # or "json"
    model_format: str = "joblib"  # or "skops": only model.skops, only trusted types (persistence.py)

    @property
    def chunk_bytes(self) -> int:
        return self.chunk_mb * MB

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * MB

    @property
    def routes(self) -> str:
        """The routes this server answers, as its 404s (nginx's and the app's) name them."""
        metrics = ", and /metrics" if self.metrics else ""
        if self.multi_model:
            return f"/ping, /models, /models/<name>, /models/<name>/invoke and /execution-parameters{metrics}"
        return f"/ping, /invocations and /execution-parameters{metrics}"


def _int(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is outside {low}..{high}")
    return value


def _bool(env: dict[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not true or false")


def cpu_count(env: dict[str, str] | None = None) -> int:
    """The CPUs this container may use: affinity and cgroup quota (see resources)."""
    return resources.cpus(env).value


def log_level(env: dict[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    raw = env.get(LOG_LEVEL, "").strip()
    if not raw:
        return logging.INFO
    if raw.isdigit():
        return int(raw)
    level = logging.getLevelName(raw.upper())
    if not isinstance(level, int):
        raise SettingsError(f"{LOG_LEVEL}={raw!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
    return level


def log_format(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    raw = env.get(LOG_FORMAT, "").strip().lower() or LOG_FORMATS[0]
    if raw not in LOG_FORMATS:
        raise SettingsError(f"{LOG_FORMAT}={raw!r}: use {' or '.join(LOG_FORMATS)}")
    return raw


def model_format(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    raw = env.get(MODEL_FORMAT, "").strip().lower() or MODEL_FORMATS[0]
    if raw not in MODEL_FORMATS:
        raise SettingsError(f"{MODEL_FORMAT}={raw!r}: use {' or '.join(MODEL_FORMATS)}")
    return raw


def metrics_enabled(env: dict[str, str] | None = None) -> bool:
    return _bool(os.environ if env is None else env, METRICS, default=True)


def thread_environment(threads: int, env: dict[str, str] | None = None) -> dict[str, str]:
    """OMP_NUM_THREADS and its kin set to `threads`, where the environment does not set them."""
    env = os.environ if env is None else env
    return {name: str(threads) for name in resources.THREAD_VARIABLES if not env.get(name, "").strip()}


def server_environment(env: dict[str, str] | None = None, threads: int | None = None) -> dict[str, str]:
    """The environment of gunicorn and its workers: this one, with the allocator defaults filled
    in and, given `threads`, each worker's native thread pools sized to it."""
    env = os.environ if env is None else env
    unset = {name: value for name, value in ALLOCATOR_DEFAULTS.items() if not env.get(name, "").strip()}
    if threads is not None:
        unset.update(thread_environment(threads, env))
    # The workers run in algo/: a relative SAGEMAKER_BASE_DIR means the caller's working directory.
    absolute = {BASE_DIR: str(paths(env).base.absolute())} if env.get(BASE_DIR) else {}
    return {**env, **unset, **absolute}


def default_chunk_mb(workers: int, env: dict[str, str] | None = None) -> int:
    share = resources.memory(env).value // (workers * CHUNK_SHARE_OF_MEMORY * MB)
    return int(min(MAX_CHUNK_MB, max(MIN_CHUNK_MB, share)))


def serving(env: dict[str, str] | None = None) -> Serving:
    env = os.environ if env is None else env
    batch = _bool(env, BATCH)
    ceiling = MAX_BATCH_PAYLOAD_IN_MB if batch else MAX_PAYLOAD_IN_MB_CEILING
    inference_output = env.get(INFERENCE_OUTPUT, "").strip().lower() or "predictions"
    if inference_output not in {"predictions", "probabilities"}:
        raise SettingsError(f"{INFERENCE_OUTPUT}={inference_output!r}: use 'predictions' or 'probabilities'")
    cpus = cpu_count(env)
    workers = _int(env, WORKERS, cpus, 1, 1024)
    return Serving(
        port=_int(env, BIND_TO_PORT, DEFAULT_PORT, 1, 65535),
        workers=workers,
        threads=resources.threads_per_worker(cpus, workers),
        chunk_mb=_int(env, CHUNK_MB, default_chunk_mb(workers, env), 0, 1024),
        timeout=_int(env, TIMEOUT, DEFAULT_TIMEOUT, 1, 3600),
        batch=batch,
        max_payload_mb=_int(env, MAX_PAYLOAD_IN_MB, DEFAULT_MAX_PAYLOAD_IN_MB, 1, ceiling),
        default_accept=env.get(DEFAULT_ACCEPT, "").strip() or "text/csv",
        inference_output=inference_output,
        log_level=log_level(env),
        preload=_bool(env, PRELOAD, default=True),
        multi_model=_bool(env, MULTI_MODEL),
        metrics=metrics_enabled(env),
        log_format=log_format(env),
        model_format=model_format(env),
    )


@dataclass(frozen=True)
class Cluster:
    """How the hosts of a multi-instance training job meet (training.cluster, training.distributed)."""

    wait: int  # seconds for every name to resolve, and for every host to join the leader
    scheduler_port: int


def cluster(env: dict[str, str] | None = None) -> Cluster:
    env = os.environ if env is None else env
    return Cluster(
        wait=_int(env, CLUSTER_WAIT, DEFAULT_CLUSTER_WAIT, 1, 24 * 3600),
        scheduler_port=_int(env, SCHEDULER_PORT, DEFAULT_SCHEDULER_PORT, 1, 65535),
    )


def warm_pool_cache(env: dict[str, str] | None = None) -> Path | None:
    """The folder SageMaker keeps between the jobs of a warm pool, or None (no warm pool)."""
    env = os.environ if env is None else env
    raw = env.get(WARM_POOL_CACHE, "").strip()
    return Path(raw) if raw else None
