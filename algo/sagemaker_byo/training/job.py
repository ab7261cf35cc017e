"""The training job's side of SageMaker's contract, around the user's `train` function.

`run(train)` reads the configuration, runs `train(job)` in a worker thread so that SIGTERM is
handled at once even while a fit runs inside native code, and on any failure writes
/opt/ml/output/failure (the first 1024 characters are DescribeTrainingJob's FailureReason),
logs the traceback and exits non-zero. `save_model` writes the model atomically.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
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
    """Run `train(job)` under SageMaker's rules and exit with its outcome; never returns."""
    configure_logging()
    paths = settings.paths()
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
        code = _finish(paths, error)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)

    def on_sigterm(signum: int, frame: Any) -> None:
        # Runs in the main thread even while the worker sits in native code: stop now.
        stop.set()
        if jobs and jobs[0].saved.is_set():
            log.info("SIGTERM after the model was saved: the job is complete")
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)
        note = jobs[0].resume_note if jobs else None
        reason = ("training was stopped by SIGTERM (StopTrainingJob, MaxRuntimeInSeconds or a Spot "
                  "interruption)" + (f"; {note}" if note else ""))
        code = _finish(paths, TrainingStopped(reason))
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    worker = threading.Thread(target=target, name="train", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    error = outcome[0] if outcome else AlgorithmError("the training thread ended without a result")
    if error is None:
        hosts = (jobs[0].resource_config.get("hosts") or []) if jobs else []
        if len(hosts) > 1 and jobs[0].resource_config.get("current_host") != hosts[0]:
            log.info("training complete; this host's part is done, and the leader %s wrote the model", hosts[0])
        else:
            log.info("training complete; model in %s", paths.model)
        sys.exit(0)
    if isinstance(error, (UserError, TrainingStopped)):
        code = _finish(paths, error)
    elif isinstance(error, (MemoryError,)):
        code = _finish(paths, UserError(
            "out of memory while training; use an instance type with more memory or less data"))
    else:
        code = _finish(paths, error)
    sys.stdout.flush()
    sys.exit(code)
