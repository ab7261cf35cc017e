"""The training side of the contract: atomic model saving, the failure file, metric lines, exit codes."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

from sagemaker_byo import settings
from sagemaker_byo.errors import AlgorithmError, TrainingStopped, UserError
from sagemaker_byo.training import job as jobs
from sagemaker_byo.training.job import (
    FAILURE_REASON_LIMIT,
    Job,
    load_job,
    metric,
    save_model,
    write_failure,
)


def write_text(text: str):
    return lambda path: path.write_text(text)


def test_save_model_puts_every_file_in_place_and_leaves_no_staging(tmp_path):
    model_dir = tmp_path / "model"
    save_model(model_dir, {"model.joblib": write_text("weights"), "model.json": write_text("{}")})
    assert sorted(p.name for p in model_dir.iterdir()) == ["model.joblib", "model.json"]
    assert (model_dir / "model.joblib").read_text() == "weights"


def test_save_model_replaces_an_existing_file(tmp_path):
    model_dir = tmp_path / "model"
    save_model(model_dir, {"model.json": write_text("old")})
    save_model(model_dir, {"model.json": write_text("new")})
    assert (model_dir / "model.json").read_text() == "new"
    assert [p.name for p in model_dir.iterdir()] == ["model.json"]


@pytest.mark.parametrize("failing", [0, 1])
def test_save_model_leaves_nothing_when_a_writer_raises(tmp_path, failing):
    model_dir = tmp_path / "model"

    def boom(path: Path) -> None:
        path.write_text("half")  # a partly written file must not survive either
        raise RuntimeError("disk full")

    writers = [write_text("weights"), write_text("{}")]
    writers[failing] = boom
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(model_dir, {"model.joblib": writers[0], "model.json": writers[1]})
    assert list(model_dir.iterdir()) == []


def test_save_model_leaves_an_earlier_model_untouched_when_a_writer_raises(tmp_path):
    model_dir = tmp_path / "model"
    save_model(model_dir, {"model.joblib": write_text("v1")})

    def boom(path: Path) -> None:
        raise OSError("no space")

    with pytest.raises(OSError):
        save_model(model_dir, {"model.joblib": write_text("v2"), "model.json": boom})
    assert [p.name for p in model_dir.iterdir()] == ["model.joblib"]
    assert (model_dir / "model.joblib").read_text() == "v1"


def test_save_model_writes_into_a_hidden_staging_folder_inside_the_model_dir(tmp_path):
    model_dir = tmp_path / "model"
    seen: list[Path] = []
    save_model(model_dir, {"m": lambda path: (seen.append(path), path.write_text("x"))})
    assert seen[0].parent.parent == model_dir  # same file system, so the rename is atomic
    assert seen[0].parent.name.startswith(".staging-")
    assert not seen[0].parent.exists()


def paths_at(tmp_path: Path) -> settings.Paths:
    return settings.paths({settings.BASE_DIR: str(tmp_path / "ml")})


def test_write_failure_creates_the_output_folder_and_writes_one_line(tmp_path):
    paths = paths_at(tmp_path)
    write_failure(paths, "UserError: bad\nthings\thappened   here\n")
    assert paths.failure.read_text() == "UserError: bad things happened here\n"
    assert sorted(p.name for p in paths.output.iterdir()) == ["failure"]  # no temporary file left


@pytest.mark.parametrize("reason", [
    "x" * 5000,
    "word " * 1000,
    "line\n" * 1000,
    "\u00e9" * 2000,
])
def test_write_failure_is_one_line_of_at_most_1024_characters(tmp_path, reason):
    paths = paths_at(tmp_path)
    write_failure(paths, reason)
    text = paths.failure.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 1
    assert text.endswith("\n")
    assert 0 < len(lines[0]) <= FAILURE_REASON_LIMIT == 1024


def test_write_failure_keeps_the_start_of_a_long_reason(tmp_path):
    paths = paths_at(tmp_path)
    write_failure(paths, "UserError: the important part. " + "detail " * 500)
    assert paths.failure.read_text().startswith("UserError: the important part. detail")


def test_write_failure_replaces_an_earlier_failure(tmp_path):
    paths = paths_at(tmp_path)
    write_failure(paths, "first")
    write_failure(paths, "second")
    assert paths.failure.read_text() == "second\n"


def test_write_failure_does_not_raise_when_the_output_folder_cannot_be_made(tmp_path, caplog):
    (tmp_path / "ml").write_text("a file where the folder should be")
    write_failure(paths_at(tmp_path), "reason")
    assert "could not write the failure file" in caplog.text


@pytest.mark.parametrize(("channel", "name", "value", "line"), [
    ("train", "accuracy", 0.9833333333, "train:accuracy=0.983333;"),
    ("validation", "accuracy", 0.96, "validation:accuracy=0.960000;"),
    ("validation", "f1_macro", 1, "validation:f1_macro=1.000000;"),
    ("train", "loss", 0.0000004, "train:loss=0.000000;"),
])
def test_metric_prints_one_line_a_metric_definition_regex_can_read(capsys, channel, name, value, line):
    metric(channel, name, value)
    assert capsys.readouterr().out == line + "\n"


def test_load_job_reads_the_three_config_files(base_dir):
    job = load_job(settings.paths({settings.BASE_DIR: str(base_dir)}))
    written = json.loads((base_dir / "input/config/hyperparameters.json").read_text())
    assert job.hyperparameters == written and written  # as the file holds them: strings, undecoded
    assert set(job.input_data_config) == {"training", "validation"}
    assert job.resource_config["current_host"] == "algo-1"
    assert job.has_channel("training")
    assert not job.has_channel("test")
    assert job.channel("training") == base_dir / "input/data/training"


def test_load_job_treats_absent_config_files_as_empty(tmp_path):
    job = load_job(paths_at(tmp_path))
    assert (job.hyperparameters, job.input_data_config, job.resource_config) == ({}, {}, {})


@pytest.mark.parametrize(("text", "message"), [
    ("{", "hyperparameters.json is not valid JSON"),
    ('["a"]', "hyperparameters.json must hold a JSON object, not list"),
])
def test_load_job_rejects_a_malformed_config_file_as_a_user_error(tmp_path, text, message):
    paths = paths_at(tmp_path)
    paths.input_config.mkdir(parents=True)
    paths.hyperparameters.write_text(text)
    with pytest.raises(UserError, match=message):
        load_job(paths)


def test_check_stop_raises_once_a_stop_was_requested(tmp_path):
    job = Job(paths_at(tmp_path), {}, {}, {})
    job.check_stop()  # nothing requested yet
    job.stop_requested.set()
    with pytest.raises(TrainingStopped):
        job.check_stop()


@pytest.fixture
def run_in(tmp_path, monkeypatch):
    """`run_in(train)`: jobs.run against a temporary /opt/ml; (exit code, failure text or None)."""
    monkeypatch.setenv(settings.BASE_DIR, str(tmp_path / "ml"))
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # keep pytest's own handlers
    paths = paths_at(tmp_path)

    def run(train) -> tuple[int, str | None]:
        with pytest.raises(SystemExit) as exited:
            jobs.run(train)
        failure = paths.failure.read_text() if paths.failure.exists() else None
        return exited.value.code, failure

    return run


def test_run_exits_0_and_writes_no_failure_when_training_succeeds(run_in, tmp_path):
    seen = tmp_path / "seen"  # the job runs in a child process: it reports through a file
    code, failure = run_in(lambda job: seen.write_text(threading.current_thread().name))
    assert (code, failure) == (0, None)
    assert seen.read_text() == "train"  # in the worker thread, so SIGTERM is handled at once


def test_run_trains_in_a_child_process_so_the_supervisor_holds_none_of_the_data(run_in, tmp_path):
    seen = tmp_path / "pid"
    code, _ = run_in(lambda job: seen.write_text(f"{os.getpid()} {os.getppid()}"))
    assert code == 0
    assert seen.read_text() != f"{os.getpid()} {os.getppid()}"
    assert int(seen.read_text().split()[1]) == os.getpid()  # this process waited for it


def kill_self(job: Job) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def cgroup(tmp_path, monkeypatch):
    """A cgroup v2 of 200 MiB as the kernel shows it, whose out-of-memory count a job can raise."""
    root = tmp_path / "cgroup"
    (root / "job").mkdir(parents=True)
    (root / "job" / "memory.max").write_text(f"{200 * 2**20}\n")
    events = root / "job" / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n")
    (tmp_path / "proc-self-cgroup").write_text("0::/job\n")
    monkeypatch.setenv("SAGEMAKER_CGROUP_ROOT", str(root))
    monkeypatch.setenv("SAGEMAKER_PROC_SELF_CGROUP", str(tmp_path / "proc-self-cgroup"))
    return lambda: events.write_text(events.read_text().replace("oom_kill 0", "oom_kill 1"))


def test_a_job_killed_for_memory_leaves_a_failure_file_naming_the_limit_and_exits_137(run_in, cgroup):
    def train(job: Job) -> None:
        cgroup()  # what the kernel does as it kills the largest process over the limit
        kill_self(job)

    code, failure = run_in(train)
    assert code == 137
    assert failure.startswith("UserError: the training process was killed for using more memory than the "
                              "container's limit of 200 MiB (cgroup v2 memory.max)"), failure
    assert "instance type with more memory" in failure and "instance_count > 1" in failure


def test_a_failure_after_an_out_of_memory_kill_in_the_container_is_reported_as_memory(run_in, cgroup):
    def train(job: Job) -> None:
        cgroup()  # a process the fit started (a joblib worker) was killed
        raise RuntimeError("A worker process managed by the executor was unexpectedly terminated")

    code, failure = run_in(train)
    assert code == 2
    assert failure.startswith("UserError: the training process was killed for using more memory"), failure
    assert "then reported: AlgorithmError: RuntimeError: A worker process" in failure


def test_a_job_killed_by_another_signal_leaves_a_failure_file_that_says_so(run_in, cgroup):
    code, failure = run_in(kill_self)
    assert code == 137
    assert failure.startswith("AlgorithmError: the training process was killed by SIGKILL without reporting "
                              "an outcome, and the kernel counted no out-of-memory kill"), failure


def test_a_job_that_exits_without_an_outcome_fails_with_its_code(run_in, cgroup):
    code, failure = run_in(lambda job: os._exit(3))
    assert code == 3
    assert failure.startswith("AlgorithmError: the training process exited with code 3 without reporting"), failure


def test_a_job_killed_while_saving_leaves_no_half_written_model(run_in, cgroup, tmp_path):
    def train(job: Job) -> None:
        save_model(job.paths.model, {"model.joblib": write_text("w"), "model.json": lambda path: kill_self(job)})

    code, _ = run_in(train)
    assert code == 137
    assert list((tmp_path / "ml" / "model").iterdir()) == []


@pytest.mark.parametrize(("version", "files", "count"), [
    (2, {"memory.events": "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n"}, 2),
    (1, {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n"}, 5),
    (2, {}, 0),  # no memory controller: nothing counted, nothing rises
])
def test_oom_kills_reads_the_kernels_count_for_either_cgroup_version(tmp_path, version, files, count):
    root = tmp_path / "cgroup"
    folder = root / ("job" if version == 2 else "memory/job")
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    proc = tmp_path / "cgroup-of-self"
    proc.write_text("0::/job\n" if version == 2 else "4:memory:/job\n")
    env = {"SAGEMAKER_CGROUP_ROOT": str(root), "SAGEMAKER_PROC_SELF_CGROUP": str(proc)}
    assert jobs.oom_kills(env) == count


def raiser(error: BaseException):
    def train(job: Job) -> None:
        raise error
    return train


@pytest.mark.parametrize(("error", "code", "failure"), [
    (UserError("channel 'training' is empty"), 1, "UserError: channel 'training' is empty\n"),
    (TrainingStopped("stop"), 143, "Stopped: stop; no model was saved\n"),
    (MemoryError(), 1, "UserError: out of memory while training; use an instance type with more memory or less data\n"),
    (ZeroDivisionError("division by zero"), 2,
     "AlgorithmError: ZeroDivisionError: division by zero (a bug in the training code, not in your input; "
     "the job log has the traceback)\n"),
    (AlgorithmError("oops"), 2, "AlgorithmError: AlgorithmError: oops (a bug in the training code"),
])
def test_run_sorts_failures_by_who_must_act(run_in, error, code, failure):
    exit_code, text = run_in(raiser(error))
    assert exit_code == code
    assert text.startswith(failure)
    assert len(text.splitlines()) == 1


def test_run_discards_a_half_saved_model(run_in, tmp_path):
    def train(job: Job) -> None:
        save_model(job.paths.model, {"model.joblib": write_text("w"), "model.json": raiser(UserError("late"))})

    code, failure = run_in(train)
    assert code == 1
    assert list((tmp_path / "ml" / "model").iterdir()) == []
    assert failure == "UserError: late\n"
