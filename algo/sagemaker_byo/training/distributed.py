"""A Dask cluster across the hosts of a training job, and the work each host does in it.

The leader (the first of `hosts`) runs the Dask scheduler; every host, the leader included, runs
one worker inside its own `train` process, sized from this container's CPUs and memory, bound to
the address its own name resolves to. The leader's `train` is the client. When the leader is
done it tells every worker the job succeeded and closes the cluster; a worker host then exits 0.
A worker host whose scheduler goes away without that word fails (the leader failed or was
stopped), so no host outlives the job for long. Imported only when a job has several hosts.

Functions sent to workers run in the worker host's `train` process and read that host's own
/opt/ml: a host's rows stay on it unless an algorithm gathers them ("joblib").
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import dask
import numpy as np
import pandas as pd
from distributed import Client, Scheduler, Worker

from .. import resources, settings
from ..errors import UserError
from . import cache, channels, cluster
from .job import load_job

log = logging.getLogger("train")

# What to check when hosts cannot reach each other, for every failure file that says so.
NETWORK_ADVICE = ("check that the job's instances can reach each other: in a VPC, the security group "
                  "needs an inbound rule allowing all traffic from the security group itself")
WATCH_INTERVAL = 1.0  # seconds between the leader's checks that every host is still in the cluster
DEPARTURE_NOTICE = 5.0  # seconds a failed step waits for the scheduler to notice a host that died

# Set in a worker host's process by the leader once the model is saved: the host then exits 0.
_succeeded = threading.Event()


def configure() -> None:
    """A worker keeps its host's rows in memory: never spilled to disk, never paused (a paused
    worker would stall a fit that needs every host), never restarted."""
    dask.config.set({
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
        "distributed.worker.memory.pause": False,
        "distributed.worker.memory.terminate": False,
        "distributed.scheduler.work-stealing": False,  # each host's rows stay where they were read
        "distributed.admin.system-monitor.gil.enabled": False,
    })


def quiet() -> None:
    """Dask's own logs at WARNING (its start-up chatter, dashboard addresses and optional
    packages are not the job's news) unless the job's log level is DEBUG."""
    level = logging.DEBUG if settings.log_level() <= logging.DEBUG else logging.WARNING
    for name in ("distributed", "dask"):
        logging.getLogger(name).setLevel(level)


@dataclass
class Sizes:
    """A worker's threads and memory limit: the figures serving uses for this container."""

    threads: int
    memory: int

    @classmethod
    def here(cls) -> Sizes:
        return cls(resources.cpus().value, resources.memory().value)


class _Loop:
    """An asyncio loop in a thread of its own, running one coroutine until asked to stop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Leader:
    """The scheduler and this host's worker (in a background loop), and the client."""

    plan: cluster.Plan
    address: str
    config: settings.Cluster
    sizes: Sizes
    client: Client | None = None
    _loop: _Loop | None = None
    _scheduler: Scheduler | None = None
    _worker: Worker | None = None
    workers: dict[str, str] = field(default_factory=dict)  # host -> worker address

    def start(self) -> Leader:
        configure()
        self._loop = _Loop("dask-scheduler")
        try:
            self._scheduler = self._loop.run(self._start_scheduler(), timeout=60)
        except OSError as error:
            raise UserError(f"the leader could not listen on {self.address}:{self.config.scheduler_port} for the "
                            f"Dask scheduler ({error}); set {settings.SCHEDULER_PORT} to a free port") from None
        self._worker = self._loop.run(self._start_worker(), timeout=60)
        # The default client: Dask collections made from futures look it up when they are computed.
        self.client = Client(self._scheduler.address, timeout=60)
        log.info("Dask scheduler at %s; waiting up to %ds for the workers of %s", self._scheduler.address,
                 self.config.wait, ", ".join(self.plan.hosts))
        return self

    async def _start_scheduler(self) -> Scheduler:
        # Its HTTP routes (health, metrics) on a port the system picks: the scheduler's own is the
        # one fixed port of the job (hosts sharing one network, as local mode's do, would collide).
        return await Scheduler(host=self.address, port=self.config.scheduler_port, dashboard=False,
                               dashboard_address=f"{self.address}:0")

    async def _start_worker(self) -> Worker:
        return await Worker(self._scheduler.address, host=self.address, name=self.plan.current,
                            nthreads=self.sizes.threads, memory_limit=self.sizes.memory, dashboard=False)

    def wait_for_workers(self) -> dict[str, str]:
        """Every host's worker, by host name; fails naming the hosts that did not join in time."""
        deadline = time.monotonic() + self.config.wait
        while True:
            self.workers = self.joined()
            missing = [h for h in self.plan.hosts if h not in self.workers]
            if not missing:
                log.info("every host joined: %s", ", ".join(f"{h} ({a})" for h, a in self.workers.items()))
                return self.workers
            if time.monotonic() > deadline:
                raise UserError(
                    f"host(s) {', '.join(missing)} did not join the cluster within {self.config.wait}s "
                    f"(joined: {', '.join(self.workers) or 'none'}); {NETWORK_ADVICE}, and that the host(s) "
                    f"started (their logs); {settings.CLUSTER_WAIT} sets the wait")
            time.sleep(0.2)

    def joined(self) -> dict[str, str]:
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        return {str(w.get("name")): address for address, w in info.items()}

    def gone(self, hosts: list[str]) -> list[str]:
        """Those of `hosts` no longer in the cluster (an error: the cluster is closing)."""
        joined = self.joined()
        return [h for h in hosts if h not in joined]

    def departed(self, hosts: list[str], within: float = DEPARTURE_NOTICE) -> list[str]:
        """After a failed step: those of `hosts` that left the cluster, waiting up to `within`
        seconds for the scheduler to notice. A host that dies breaks the step's own connections
        (LightGBM's sockets, a lost future) a moment before the scheduler drops its worker, so the
        step's error can come first; it is the departure that says what happened. None when the
        cluster itself is closing: the step's own error says more."""
        deadline = time.monotonic() + within
        while True:
            try:
                gone = self.gone(hosts)
            except Exception:  # noqa: BLE001 - the cluster is closing
                return []
            if gone or time.monotonic() >= deadline:
                return gone
            time.sleep(0.2)

    @staticmethod
    def left(gone: list[str], what: str, why: str) -> UserError:
        return UserError(f"host(s) {', '.join(gone)} left the cluster during {what}, which cannot go on without "
                         f"{why}; the instance failed or was stopped (its log says why), or the hosts lost "
                         f"contact: {NETWORK_ADVICE}")

    def watch(self, job, hosts: list[str], what: str, why: str) -> threading.Event:
        """Until the returned event is set, end the job (job.abort) as soon as one of `hosts`
        leaves the cluster."""
        done = threading.Event()

        def check() -> None:
            while not done.wait(WATCH_INTERVAL):
                try:
                    gone = self.gone(hosts)
                except Exception:  # noqa: BLE001 - the cluster is closing
                    return
                if gone and not done.is_set() and not job.saved.is_set():
                    job.abort(self.left(gone, what, why))
                    return

        threading.Thread(target=check, name="watch-hosts", daemon=True).start()
        return done

    def finish(self, succeeded: bool) -> None:
        """Tell every worker host how the job ended, then close the cluster."""
        if self.client is not None:
            try:
                if succeeded:
                    self.client.run(_mark_succeeded)
                self.client.shutdown()
            except Exception as error:  # noqa: BLE001 - a host that is already gone needs no word
                log.warning("closing the cluster: %s", error)
            self.client = None
        if self._loop is not None:
            self._loop.stop()
            self._loop = None


def _mark_succeeded() -> None:
    _succeeded.set()


def serve(plan: cluster.Plan, address: str, leader_address: str, config: settings.Cluster, sizes: Sizes) -> None:
    """A worker host: join the leader's scheduler and work until the leader closes the cluster."""
    configure()
    scheduler = f"tcp://{leader_address}:{config.scheduler_port}"
    log.info("host %s joins the leader %s at %s (waiting up to %ds)", plan.current, plan.leader, scheduler,
             config.wait)

    async def work() -> str | None:
        try:
            worker = await Worker(scheduler, host=address, name=plan.current, nthreads=sizes.threads,
                                  memory_limit=sizes.memory, dashboard=False, death_timeout=config.wait)
        except (TimeoutError, OSError) as error:
            return str(error) or type(error).__name__
        log.info("host %s is a worker at %s", plan.current, worker.address)
        await worker.finished()
        return None

    problem = asyncio.run(work())
    if problem is not None:
        raise UserError(f"host {plan.current} could not join the leader {plan.leader} at {scheduler} within "
                        f"{config.wait}s ({problem}); {NETWORK_ADVICE}; the leader's log says whether it started")
    if not _succeeded.is_set():
        raise UserError(f"the leader {plan.leader} closed the cluster before the job succeeded (it failed or was "
                        f"stopped: its failure file and log say why), or host {plan.current} lost contact with it; "
                        f"{NETWORK_ADVICE}")
    log.info("the leader %s finished the job; host %s is done", plan.leader, plan.current)


# -- work done on each host --------------------------------------------------------------------


@dataclass
class Part:
    """One host's rows of a channel, as read there: features and target."""

    host: str
    features: pd.DataFrame
    target: pd.Series


def read_share(channel: str, header: bool, target, group: str | None = None) -> Part | None:
    """This host's rows of `channel`: every file it holds under ShardedByS3Key, its share of the
    files under FullyReplicated (among the hosts of the instance `group` that trains); None when
    it has none (more hosts than files)."""
    from .fitting import name_columns  # noqa: PLC0415 - the one-host path's helpers, on the worker

    job = load_job()
    plan = cluster.plan(job.resource_config, group)
    root = job.channel(channel)
    files = channels.channel_files(channel, root, allow_none=True)
    if cluster.distribution(channel, job.input_data_config) == cluster.REPLICATED:
        files = cluster.share(files, len(plan.hosts), plan.rank)
    if not files:
        log.info("host %s has no files of channel %s", plan.current, channel)
        return None
    try:
        table = cache.read_table(channel, root, header=header, target=target, files=files)
    except UserError as error:
        if "has no data rows" in str(error):
            return None
        raise UserError(f"host {plan.current}: {error}") from None
    features, y = channels.split_target(table, target, channel)
    features = name_columns(features)
    channels.check_features(features, table)
    log.info("host %s holds %d rows of channel %s from %d file(s)", plan.current, len(y), channel, len(files))
    return Part(plan.current, features, y)


@dataclass
class Summary:
    """What the leader learns of a host's rows without the rows."""

    host: str
    rows: int
    columns: list
    dtypes: list[str]
    nbytes: int
    categories: dict[str, list]  # text column -> its distinct values
    target_kind: str
    target_values: list | None  # distinct target values, when few (a classification's classes)
    sample: pd.DataFrame  # a few rows, for the model's input contract
    target_name: Any = None


def summarise(part: Part | None, classes_limit: int) -> Summary | None:
    if part is None:
        return None
    from .algorithms import text_columns  # noqa: PLC0415

    features, y = part.features, part.target
    categories = {c: sorted(map(str, features[c].dropna().unique())) for c in text_columns(features)}
    distinct = pd.unique(y.to_numpy())
    return Summary(
        host=part.host, rows=len(y), columns=list(features.columns), dtypes=[str(d) for d in features.dtypes],
        nbytes=int(features.memory_usage(deep=True).sum() + y.memory_usage(deep=True)),
        categories=categories, target_kind=y.dtype.kind,
        target_values=sorted(distinct.tolist(), key=str) if len(distinct) <= classes_limit else None,
        sample=features.head(5), target_name=y.name,
    )


def prepare(part: Part, task: str, preprocessing, lacking: list | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A host's rows as the estimator takes them: preprocessed float32 features, the target, and
    the rows' weights (1); a row of weight 0 (a copy of the first) for each class in `lacking`,
    the classes of other hosts this host's rows lack."""
    from .fitting import prepare_target  # noqa: PLC0415

    features = part.features
    matrix = preprocessing.transform(features) if preprocessing is not None else features.to_numpy(np.float32)
    matrix, target = np.asarray(matrix, dtype=np.float32), prepare_target(part.target, task)
    weights = np.ones(len(target), dtype=np.float32)
    if lacking:
        matrix = np.concatenate([matrix, np.repeat(matrix[:1], len(lacking), axis=0)])
        target = np.concatenate([target, np.asarray(lacking, dtype=target.dtype)])
        weights = np.concatenate([weights, np.zeros(len(lacking), dtype=np.float32)])
    return matrix, target, weights


def gather_rows(part: Part | None) -> tuple[pd.DataFrame, pd.Series] | None:
    return None if part is None else (part.features, part.target)


def columns_of(part: Part | None) -> list | None:
    return None if part is None else list(part.features.columns)


def partial_scores(part: Part | None, model, task: str, classes: list | None, channel: str) -> dict[str, Any] | None:
    """Sums from which the leader computes a channel's metrics over every host's rows."""
    if part is None:
        return None
    from .evaluation import partial  # noqa: PLC0415
    from .fitting import prepare_target  # noqa: PLC0415

    return partial(task, model, part.features, prepare_target(part.target, task), classes, channel)


def prepared_scores(prepared: tuple[np.ndarray, np.ndarray, np.ndarray], estimator, task: str,
                    classes: list | None, channel: str) -> dict[str, Any]:
    """partial_scores of a host's rows as `prepare` made them (but the rows of weight 0, which
    stand in for classes the host lacks), with the final estimator."""
    from .evaluation import partial  # noqa: PLC0415

    matrix, target, weights = prepared
    real = weights > 0
    return partial(task, estimator, matrix[real], target[real], classes, channel)
