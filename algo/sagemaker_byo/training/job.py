"""The training job's side of SageMaker's contract, around the user's `train` function.

`run(train)` reads the configuration, runs `train(job)` in a worker thread so that SIGTERM is
handled at once even while a fit runs inside native code, and on any failure writes
/opt/ml/output/failure (the first 1024 characters are DescribeTrainingJob's FailureReason),
logs the traceback and exits non-zero. `save_model` writes the model atomically.

The job runs in a child process; the parent (PID 1 in the container) stays small, forwards
SIGTERM and SIGINT, and exits with the child's code. When the child dies without reporting its
outcome (the kernel's out-of-memory killer sends an uncatchable SIGKILL), the parent writes the
failure file, naming the memory limit when the cgroup counted an out-of-memory kill.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from .. import resources, settings
from ..errors import AlgorithmError, TrainingStopped, UserError, missing_library

log = logging.getLogger("train")

EXIT_USER_ERROR = 1
EXIT_ALGORITHM_ERROR = 2
EXIT_STOPPED = 143  # 128 + SIGTERM, as a shell reports it
FAILURE_REASON_LIMIT = 1024


@dataclass
class Job:
    """What SageMaker tells a training job: paths and the three configuration files."""

    paths: settings.Paths
    hyperparameters: dict[str, Any]
    input_data_config: dict[str, Any]
    resource_config: dict[str, Any]
    stop_requested: threading.Event = field(default_factory=threading.Event)
    resume_note: str | None = None  # set by a fit that checkpoints: said when the job is stopped
    # Set once the model is in place: a SIGTERM after it (local mode stops every host as soon as
    # one exits) ends the job as a success instead of failing a finished job.
    saved: threading.Event = field(default_factory=threading.Event)
    # Ends the job at once from any thread with this error's failure file and exit code (a fit
    # in native code cannot be interrupted otherwise); set by `run`.
    abort: Callable[[BaseException], None] | None = None
    # Set by a host that takes no part (an instance group that does not train): why; its success line.
    idle: str | None = None
    leader: str | None = None  # set on a host of several that is not the leader: the host that saves the model

    def channel(self, name: str) -> Path:
        return self.paths.channel(name)

    def has_channel(self, name: str) -> bool:
        return name in self.input_data_config or self.paths.channel(name).is_dir()

    def check_stop(self) -> None:
        """Call between steps of a long fit: raises TrainingStopped once SIGTERM has arrived."""
        if self.stop_requested.is_set():
            raise TrainingStopped("training was stopped by SIGTERM")


def _read_json(path: Path, required: bool = False) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise UserError(f"{path} is missing")
        return {}
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path.name} is not valid JSON ({error}); SageMaker writes it as a JSON object") from None
    if not isinstance(value, dict):
        raise UserError(f"{path.name} must hold a JSON object, not {type(value).__name__}")
    return value


def load_job(paths: settings.Paths | None = None) -> Job:
    paths = paths or settings.paths()
    return Job(
        paths=paths,
        hyperparameters=_read_json(paths.hyperparameters),
        input_data_config=_read_json(paths.input_data_config),
        resource_config=_read_json(paths.resource_config),
    )


def write_failure(paths: settings.Paths, reason: str) -> None:
    """One line; SageMaker shows the first 1024 characters, so the useful part goes first."""
    line = " ".join(reason.split())[:FAILURE_REASON_LIMIT]
    try:
        paths.output.mkdir(parents=True, exist_ok=True)
        tmp = paths.failure.with_name(".failure.tmp")
        tmp.write_text(line + "\n")
        os.replace(tmp, paths.failure)
    except OSError:
        log.exception("could not write the failure file %s", paths.failure)


def metric(channel: str, name: str, value: float) -> None:
    """One metric per line, e.g. `validation:accuracy=0.9600;`, for MetricDefinitions regexes."""
    print(f"{channel}:{name}={value:.6f};", flush=True)


class _Staging:
    """Hidden folders beside the model where files are written before they are moved into place.

    The lock makes the moves and a SIGTERM's clean-up exclusive: a stop never interrupts a
    half-done set of renames.
    """

    def __init__(self) -> None:
        self.dirs: list[Path] = []
        self.lock = threading.Lock()

    def new(self, model_dir: Path) -> Path:
        model_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=".staging-", dir=model_dir))
        with self.lock:
            self.dirs.append(path)
        return path

    def discard(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)
        with self.lock:
            if path in self.dirs:
                self.dirs.remove(path)

    def discard_all(self) -> None:
        with self.lock:
            for path in self.dirs:
                shutil.rmtree(path, ignore_errors=True)
            self.dirs.clear()


_staging = _Staging()


def save_model(model_dir: Path, files: dict[str, Callable[[Path], None]]) -> None:
    """Write each file with its writer into a staging folder, then rename them all into model_dir.

    A run that fails or is stopped before the renames leaves nothing in model_dir; the files
    are renamed in the order given, so put the description of the model last.
    """
    staging = _staging.new(model_dir)
    try:
        for name, write in files.items():
            write(staging / name)
        with _staging.lock:
            for name in files:
                os.replace(staging / name, model_dir / name)
    finally:
        _staging.discard(staging)


def configure_logging() -> None:
    logging.basicConfig(
        level=settings.log_level(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _finish(paths: settings.Paths, error: BaseException) -> int:
    _staging.discard_all()
    if isinstance(error, TrainingStopped):
        write_failure(paths, f"Stopped: {error}; no model was saved")
        log.error("training stopped: %s", error)
        return EXIT_STOPPED
    if isinstance(error, UserError):
        write_failure(paths, f"UserError: {error}")
        log.error("training failed (user error): %s", error)
        return EXIT_USER_ERROR
    missing = missing_library(error)
    if missing is not None:  # the image lacks what the algorithm needs: the fork's to fix, not a bug
        write_failure(paths, f"UserError: the algorithm needs a library: {missing}")
        log.error("training failed (a library is missing): %s\n%s", missing,
                  "".join(traceback.format_exception(error)))
        return EXIT_USER_ERROR
    detail = f"{type(error).__name__}: {error}"
    write_failure(
        paths,
        f"AlgorithmError: {detail} (a bug in the training code, not in your input; "
        f"the job log has the traceback)",
    )
    log.error("training failed (algorithm error)\n%s", "".join(traceback.format_exception(error)))
    return EXIT_ALGORITHM_ERROR


def run(train: Callable[[Job], None]) -> None:
    """Run `train(job)` under SageMaker's rules and exit with its outcome; never returns.

    The job runs in a child process; this one stays small and waits for it, forwarding SIGTERM
    and SIGINT. A child that dies without reporting its outcome (the kernel's out-of-memory
    killer sends SIGKILL, which nothing can catch) still leaves a failure file saying why.
    """
    configure_logging()
    paths = settings.paths()
    if not hasattr(os, "fork"):  # not Linux: no supervisor, the job runs here
        sys.exit(_run_here(train, paths, leave=_leave))
    sys.exit(_supervise(train, paths))


def _leave(code: int, outcome: int | None = None) -> NoReturn:
    """End this process at once, from any thread, after telling the supervisor the outcome."""
    if outcome is not None:
        try:
            os.write(outcome, bytes([code & 0xFF]))
        except OSError:
            pass  # the supervisor is gone: nobody to tell
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _run_here(train: Callable[[Job], None], paths: settings.Paths, leave: Callable[[int], NoReturn],
              mask: set[signal.Signals] | None = None) -> int:
    """`train(job)` in a worker thread of this process; the exit code. `leave(code)` ends the
    process at once (SIGTERM, `abort`); `mask`, once the handlers are in place, is the signal
    mask to restore (signals that arrived before are then handled)."""
    outcome: list[BaseException | None] = []
    stop = threading.Event()
    jobs: list[Job] = []

    def target() -> None:
        try:
            job = load_job(paths)
            job.stop_requested = stop
            job.abort = abort
            jobs.append(job)
            train(job)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - everything must reach the failure file
            outcome.append(error)

    def abort(error: BaseException) -> None:
        if isinstance(error, MemoryError):
            error = UserError("out of memory while training; use an instance type with more memory or less data")
        leave(_finish(paths, error))

    def on_sigterm(signum: int, frame: Any) -> None:
        # Runs in the main thread even while the worker sits in native code: stop now.
        stop.set()
        if jobs and jobs[0].saved.is_set():
            log.info("SIGTERM after the model was saved: the job is complete")
            leave(0)
        note = jobs[0].resume_note if jobs else None
        reason = ("training was stopped by SIGTERM (StopTrainingJob, MaxRuntimeInSeconds or a Spot "
                  "interruption)" + (f"; {note}" if note else ""))
        leave(_finish(paths, TrainingStopped(reason)))

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    worker = threading.Thread(target=target, name="train", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    error = outcome[0] if outcome else AlgorithmError("the training thread ended without a result")
    if error is None:
        if jobs and jobs[0].idle:
            log.info("done without training: %s", jobs[0].idle)
        elif jobs and jobs[0].leader:
            log.info("training complete; this host's part is done, and the leader %s wrote the model", jobs[0].leader)
        else:
            log.info("training complete; model in %s", paths.model)
        return 0
    if isinstance(error, MemoryError):
        error = UserError("out of memory while training; use an instance type with more memory or less data")
    return _finish(paths, error)


# -- the supervisor: the parent that waits for the job's process ---------------------------------

_FORWARDED = (signal.SIGTERM, signal.SIGINT)
_PR_SET_PDEATHSIG = 1  # prctl(2)
CHILD_OOM_SCORE_ADJ = 100  # of -1000..1000: adds a tenth of the memory limit to the job's badness


def _die_with(parent: int) -> None:
    """SIGKILL this process when its supervisor dies (killed itself, e.g. a test's or an operator's
    SIGKILL): a job must not go on with nobody to report its outcome."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(EXIT_ALGORITHM_ERROR)


def _prefer_as_victim() -> None:
    """Make this process, not the supervisor, the out-of-memory killer's choice should their
    sizes ever be close: the supervisor must live to write the failure file. Raising one's own
    score needs no privilege."""
    try:
        path = Path("/proc/self/oom_score_adj")
        path.write_text(str(max(int(path.read_text()), CHILD_OOM_SCORE_ADJ)))
    except (OSError, ValueError):
        pass


def _supervise(train: Callable[[Job], None], paths: settings.Paths) -> int:
    """Fork the job's process before it reads anything, wait for it, and exit as it did; explain
    a death it could not report. SIGTERM and SIGINT are blocked across the fork so that one that
    arrives then is forwarded (here) or handled (there), never lost."""
    kills_before = oom_kills()
    started = time.monotonic()
    read_end, write_end = os.pipe()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    parent = os.getpid()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else both processes would write what was buffered
    child = os.fork()
    if child == 0:
        os.close(read_end)
        code = EXIT_ALGORITHM_ERROR
        try:
            _die_with(parent)
            _prefer_as_victim()
            code = _run_here(train, paths, leave=lambda c: _leave(c, write_end), mask=mask)
        except BaseException:  # noqa: BLE001 - the child never returns into its parent's stack
            log.exception("the training process failed outside the job")
        finally:
            _leave(code, write_end)
    os.close(write_end)

    def forward(signum: int, frame: Any) -> None:
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        status = _wait(child)
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
    os.set_blocking(read_end, False)
    try:
        reported = os.read(read_end, 1)
    except BlockingIOError:  # a process the job started holds the pipe open
        reported = b""
    os.close(read_end)
    code = os.waitstatus_to_exitcode(status)
    code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
    killed = oom_kills() > kills_before
    if reported and not (killed and code not in (0, EXIT_STOPPED)):
        return code
    return _explain(paths, code, status, killed, reported, time.monotonic() - started)


def _wait(child: int) -> int:
    """The child's wait status. As PID 1 (a container's first process), also reap the orphans
    that end meanwhile, as init must."""
    while True:
        pid, status = os.waitpid(-1 if os.getpid() == 1 else child, 0)
        if pid == child:
            return status


def _explain(paths: settings.Paths, code: int, status: int, killed: bool, reported: bytes, elapsed: float) -> int:
    """The failure file for a job's process that died without reporting why, or whose failure
    followed an out-of-memory kill in the container; the exit code, never 0."""
    _discard_staging(paths.model)
    if killed:
        limit = resources.memory()
        where = (f"the container's limit of {_size(limit.value)} ({limit.source})" if "cgroup" in limit.source
                 else f"the machine's {_size(limit.value)} of memory")
        reason = (f"UserError: the training process was killed for using more memory than {where}, "
                  f"after {elapsed:.0f}s; use an instance type with more memory, train on fewer rows or columns, "
                  f"or use an algorithm that trains across hosts with instance_count > 1")
        if reported and paths.failure.exists():  # the job saw its own part die first: keep what it said
            reason += f". The training code then reported: {paths.failure.read_text().strip()}"
        log.error("%s", reason)
        write_failure(paths, reason)
        return code or EXIT_USER_ERROR
    if os.WIFSIGNALED(status):
        what = f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    else:
        what = f"exited with code {code}"
    reason = (f"AlgorithmError: the training process {what} without reporting an outcome, and the kernel "
              f"counted no out-of-memory kill (a crash in native code, or an exit from the training code; "
              f"the job log has its last lines)")
    log.error("%s", reason)
    write_failure(paths, reason)
    return code or EXIT_ALGORITHM_ERROR


def _discard_staging(model_dir: Path) -> None:
    """A process killed while saving leaves its staging folder (save_model): no half-written model."""
    for path in model_dir.glob(".staging-*"):
        shutil.rmtree(path, ignore_errors=True)


def _size(value: int) -> str:
    return f"{value / resources.GIB:.2f} GiB" if value >= resources.GIB else f"{value / 2**20:.0f} MiB"


def oom_kills(env: dict[str, str] | None = None) -> int:
    """The kernel's count of processes its out-of-memory killer ended in this process's cgroups
    (v2 memory.events, v1 memory.oom_control: `oom_kill N`), added up along the path; only a rise
    matters."""
    env = os.environ if env is None else env
    total = 0
    for version, folder in resources._cgroup_dirs(env):  # the same walk as resources.memory()
        name = "memory.events" if version == 2 else "memory.oom_control"
        try:
            text = (folder / name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                total += int(value)
    return total
