"""What `train` does beyond the bundled iris job, in a fork (tests/forks.py) whose algorithm.py is
the fixture catalogue, run as SageMaker runs it on a temporary /opt/ml.

Header and target, models of several kinds (a KNN pipeline, a TF-IDF text pipeline, a model that
is no scikit-learn estimator, a forest with text columns and missing values, and the real
`algo/serve` answering raw rows for it), the task and the refusals named for the algorithm,
model.json's input contract, input modes, multi-instance jobs, and checkpoints that survive a
SIGTERM. Every run pays about two seconds of imports, so the jobs are arranged up front and run
concurrently once per module (`outcomes`); the checkpoint tests share one interrupted job
(`checkpointed`).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

import forks
from support import copy_test_dir, wait_until

Arrange = Callable[[Path], None]

METRIC_LINE = re.compile(r"(\w+):(\w+)=(-?[0-9.]+|nan);")
CLASSIFICATION_METRICS = {"accuracy", "f1_macro", "log_loss", "roc_auc"}
REGRESSION_METRICS = {"rmse", "mae", "r2"}
TARGETS = {"classification": "label", "regression": "price"}
FEATURES = ["size", "color", "weight"]
CLASSES = ["high", "low", "mid"]
ROWS = 120
SVG = "{http://www.w3.org/2000/svg}"


# --- data ---------------------------------------------------------------------------------

def table(task: str, rows: int = ROWS, seed: int = 0, missing: bool = True) -> pd.DataFrame:
    """Target first, then `size` (number), `color` (text: a category) and `weight` (number);
    with `missing`, one empty cell in each feature."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=rows).round(3)
    weight = rng.uniform(0, 10, rows).round(3)
    color = rng.choice(["red", "green", "blue"], rows).astype(object)
    score = size + weight / 5 + 1.5 * (color == "red")
    if task == "classification":
        target = np.where(score < 1.2, "low", np.where(score < 2.5, "mid", "high"))
    else:
        target = (10 * score + rng.normal(size=rows)).round(4) + 0.0001  # never a whole number
    frame = pd.DataFrame({TARGETS[task]: target, "size": size, "color": color, "weight": weight})
    if missing:
        frame.loc[3, "size"] = np.nan
        frame.loc[5, "color"] = None
        frame.loc[7, "weight"] = np.nan
    return frame


def numbers_only(task: str) -> pd.DataFrame:
    return table(task, missing=False).drop(columns="color")


def reviews(rows: int = ROWS) -> pd.DataFrame:
    """A label and one column of free text (no commas: nothing to quote), and a number."""
    good = ["great fun for all", "lovely and warm", "a great story well told"]
    bad = ["dull and slow", "an awful plot", "slow story badly told"]
    return pd.DataFrame({"label": ["good" if i % 2 else "bad" for i in range(rows)],
                         "review": [(good if i % 2 else bad)[i % 3] for i in range(rows)],
                         "stars": [float(i % 5) for i in range(rows)]})


def whole_number_target() -> pd.DataFrame:
    """The regression table with its target cut to the whole numbers 0 to 4."""
    frame = table("regression")
    return frame.assign(price=(frame.price // 10).clip(0, 4))


# --- building a job's /opt/ml -------------------------------------------------------------

def config(ml: Path, name: str) -> Path:
    return ml / "input" / "config" / name


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value))


def job(frame: pd.DataFrame, *, header: bool = True, mode: str = "File", content_type: str = "text/csv",
        **hyperparameters: str) -> Arrange:
    """A job whose only channel, `training`, holds `frame` as one CSV file (with a header row
    when `header`); hyperparameters are strings, as SageMaker passes them."""
    def arrange(ml: Path) -> None:
        data = ml / "input" / "data"
        shutil.rmtree(data)
        (data / "training").mkdir(parents=True)
        frame.to_csv(data / "training" / "data.csv", index=False, header=header)
        write_json(config(ml, "inputdataconfig.json"), {"training": {
            "ContentType": content_type, "TrainingInputMode": mode,
            "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}})
        write_json(config(ml, "hyperparameters.json"), {"header": str(header).lower(), **hyperparameters})
    return arrange


def then(*steps: Arrange) -> Arrange:
    def arrange(ml: Path) -> None:
        for step in steps:
            step(ml)
    return arrange


def piped(ml: Path) -> None:
    """Pipe mode as SageMaker does it: no folder, a FIFO `training_0` fed once a reader opens it."""
    folder = ml / "input" / "data" / "training"
    csv = (folder / "data.csv").read_bytes()
    shutil.rmtree(folder)
    fifo = folder.parent / "training_0"
    os.mkfifo(fifo)
    threading.Thread(target=feed, args=(fifo, csv), daemon=True).start()


def feed(fifo: Path, data: bytes, timeout: float = 60) -> None:
    # A non-blocking open fails (ENXIO) until train opens the FIFO to read: poll, bounded.
    deadline = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:
            if error.errno != errno.ENXIO or time.monotonic() > deadline:
                return
            time.sleep(0.05)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(data)


def hosts(current: str, names: list[str]) -> Arrange:
    return lambda ml: write_json(config(ml, "resourceconfig.json"),
                                 {"current_host": current, "hosts": names, "network_interface_name": "eth0"})


# --- running the jobs ---------------------------------------------------------------------

@dataclass
class Outcome:
    ml: Path
    result: subprocess.CompletedProcess

    @property
    def model_dir(self) -> Path:
        return self.ml / "model"

    @property
    def description(self) -> dict:
        return json.loads((self.model_dir / "model.json").read_text())

    def metrics(self) -> dict[str, dict[str, float]]:
        """The metric lines printed for MetricDefinitions, by channel."""
        printed: dict[str, dict[str, float]] = {}
        for line in self.result.stdout.splitlines():
            match = METRIC_LINE.fullmatch(line)
            if match:
                channel, name, value = match.groups()
                assert name not in printed.get(channel, {}), f"{channel}:{name} printed twice"
                printed.setdefault(channel, {})[name] = float(value)
        return printed

    def failure(self) -> str:
        return (self.ml / "output" / "failure").read_text()

    def model_files(self) -> list[str]:
        return sorted(p.name for p in self.model_dir.iterdir()) if self.model_dir.exists() else []


FOREST = {"algorithm": "forest", "n_estimators": "10"}

JOBS: dict[str, Arrange] = {
    # Header, target by name, task inferred from the target: a model of each kind.
    "forest classification": job(table("classification"), target="label", **FOREST),
    "forest regression": job(table("regression"), target="price", **FOREST),
    "knn": job(numbers_only("classification"), algorithm="knn", n_neighbors="3", target="label"),
    "words": job(reviews(), algorithm="words", target="label"),
    "quantile": job(table("regression"), algorithm="quantile", q="0.5", target="price"),
    "target by index, no header": job(whole_number_target().iloc[:, [1, 2, 3, 0]], header=False, target="-1",
                                      **FOREST),
    "whole-number target, task regression": job(whole_number_target(), target="price", task="regression", **FOREST),
    "FastFile": job(table("classification"), mode="FastFile", target="label", **FOREST),
    "Pipe": then(job(table("classification"), mode="Pipe", target="label", **FOREST), piped),
}


@dataclass(frozen=True)
class Rejected:
    """A job that must fail as a UserError (exit 1, no model) whose reason names the problem."""

    id: str
    arrange: Arrange
    mentions: tuple[str, ...]
    bug: str = ""  # set while the job gets this case wrong: the test is then a strict xfail

    def param(self):
        marks = pytest.mark.xfail(reason=f"BUG: {self.bug}", strict=True) if self.bug else ()
        return pytest.param(self, id=self.id, marks=marks)


REJECTED = [
    Rejected("secondary host of a one-host algorithm",
             then(job(numbers_only("classification"), algorithm="knn", target="label"),
                  hosts("algo-2", ["algo-1", "algo-2"])),
             ("algorithm 'knn' trains on one host", "set instance_count=1")),
    Rejected("target name without header=true", job(table("classification"), header=False, target="label"),
             ("'label'", "header=true", "index")),
    Rejected("hyperparameter of another algorithm",
             job(numbers_only("classification"), algorithm="knn", target="label", n_estimators="50"),
             ("unknown hyperparameter 'n_estimators' for algorithm 'knn'", "allowed", "n_neighbors")),
    Rejected("a task the algorithm lacks, set", job(numbers_only("regression"), algorithm="knn", target="price",
                                                     task="regression"),
             ("algorithm 'knn' has no regression variant; it supports: classification",)),
    Rejected("a task the algorithm lacks, inferred", job(numbers_only("regression"), algorithm="knn", target="price"),
             ("algorithm 'knn' has no regression variant; it supports: classification", "inferred",
              "'price'", "task")),
    Rejected("a parameter of the other task", job(table("regression"), target="price", class_weight="balanced",
                                                   **FOREST),
             ("'class_weight' of algorithm 'forest' applies to classification only", "regression")),
    Rejected("a value scikit-learn refuses for the task",
             job(table("regression"), target="price", criterion="gini", **FOREST),
             ("algorithm 'forest' (regression)", "'criterion'", "'squared_error'", "'gini'")),
    Rejected("a parameter the estimator does not take", job(numbers_only("classification"), algorithm="misspelt",
                                                             target="label"),
             ("algorithm 'misspelt' (classification) could not be built", "'depth'",
              "its hyperparameters for classification: depth")),
    Rejected("recordio content type",
             job(table("classification"), target="label", content_type="application/x-recordio-protobuf"),
             ("'training'", "application/x-recordio-protobuf", "text/csv", "application/x-parquet")),
    Rejected("headerless target with a missing value",
             job(table("classification").assign(label=lambda f: f.label.where(f.index != 4)), header=False),
             ("data.csv, data row 5", "no value in the target column", "CSV column 1")),
]


def run_all(fork: Path, jobs: dict[str, Arrange], root: Path) -> dict[str, Outcome]:
    def run(item: tuple[int, tuple[str, Arrange]]) -> tuple[str, Outcome]:
        index, (name, arrange) = item
        ml = copy_test_dir(root / f"job{index}" / "ml")
        arrange(ml)
        return name, Outcome(ml, forks.run_train(fork, ml))

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(pool.map(run, enumerate(jobs.items())))


@pytest.fixture(scope="module")
def fork(tmp_path_factory) -> Path:
    """algo/ with the fixture catalogue as its algorithm.py, as a user forks the container."""
    return forks.make_fork(tmp_path_factory.mktemp("fork") / "algo")


@pytest.fixture(scope="module")
def outcomes(fork, tmp_path_factory) -> dict[str, Outcome]:
    return run_all(fork, {**JOBS, **{case.id: case.arrange for case in REJECTED}},
                   tmp_path_factory.mktemp("features"))


def succeeded(outcomes: dict[str, Outcome], name: str) -> Outcome:
    outcome = outcomes[name]
    assert outcome.result.returncode == 0, outcome.result.stderr[-3000:]
    assert not (outcome.ml / "output" / "failure").exists()
    return outcome


# --- header and target ----------------------------------------------------------------------

def test_header_names_the_features_and_the_target_is_chosen_by_name(outcomes):
    description = succeeded(outcomes, "forest classification").description
    assert description["feature_names"] == FEATURES
    assert description["feature_names_from_header"] is True
    assert description["target"] == "label"
    assert description["classes"] == CLASSES


def test_target_by_negative_index_and_headerless_features_named_by_csv_position(outcomes):
    description = succeeded(outcomes, "target by index, no header").description
    assert description["feature_names"] == ["column_1", "column_2", "column_3"]
    assert description["categorical_features"] == ["column_2"]
    assert description["target"] == "3"  # the last of four columns, 0-based


# --- models of several kinds -----------------------------------------------------------------

KINDS = {  # job: (task, final estimator, fitted on a DataFrame, text columns, columns that take a missing value)
    "forest classification": ("classification", "RandomForestClassifier", True, ["color"], FEATURES),
    "forest regression": ("regression", "RandomForestRegressor", True, ["color"], FEATURES),
    "knn": ("classification", "KNeighborsClassifier", False, [], []),
    "words": ("classification", "LogisticRegression", True, ["review"], ["stars"]),
    "quantile": ("regression", "Quantile", False, ["color"], FEATURES),  # its predict takes anything
}


@pytest.mark.parametrize("name", list(KINDS))
def test_each_kind_of_model_trains_prints_its_metrics_and_records_its_input_contract(outcomes, name):
    task, estimator, frame, text, accepting = KINDS[name]
    outcome = succeeded(outcomes, name)
    printed = outcome.metrics()
    assert set(printed) == {"train"}  # no validation channel
    expected = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    assert set(printed["train"]) == expected

    saved = json.loads((outcome.ml / "output" / "data" / "metrics.json").read_text())
    assert set(saved) == {"train"} and set(saved["train"]) == expected
    for metric, value in printed["train"].items():
        assert saved["train"][metric] == pytest.approx(value, abs=1e-6), metric  # printed with 6 decimals

    description = outcome.description
    assert outcome.model_files() == ["model.joblib", "model.json", "model.skops"]
    assert description["format_version"] == 2 and "accepts_missing_values" not in description
    assert description["algorithm"] == name.split()[0]
    assert description["task"] == task  # inferred: text labels, then a float target
    assert description["estimator"] == estimator
    assert description["training_rows"] == ROWS
    assert description["metrics"] == saved
    contract = description["input"]
    assert contract["measured"] is True and contract["frame"] is frame
    assert [c["name"] for c in contract["columns"]] == description["feature_names"]
    assert [c["name"] for c in contract["columns"] if c["text"]] == text == description["categorical_features"]
    assert [c["name"] for c in contract["columns"] if c["accepts_missing"]] == accepting


def test_a_model_that_fits_itself_is_loaded_from_the_forks_algorithm_module(outcomes, fork):
    outcome = succeeded(outcomes, "quantile")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, joblib; sys.path.insert(0, sys.argv[1]); "
         "print(joblib.load(sys.argv[2]).predict([[1.0, 'red', 2.0]])[0])", str(fork),
         str(outcome.model_dir / "model.joblib")], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert float(loaded.stdout) == pytest.approx(float(np.median(table("regression").price)))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_evaluation_figure_is_an_svg_of_the_task(outcomes, task):
    outcome = succeeded(outcomes, f"forest {task}")
    root = ET.parse(outcome.ml / "output" / "data" / "evaluation.svg").getroot()
    assert root.tag == f"{SVG}svg"
    texts = {element.text for element in root.iter(f"{SVG}text")}
    if task == "classification":  # a confusion matrix: a cell per pair of classes, labelled
        assert "train: confusion matrix" in texts and set(CLASSES) <= texts
        cells = [rect for rect in root.iter(f"{SVG}rect") if rect.get("stroke")]
        assert len(cells) == len(CLASSES) ** 2
        assert sum(int(t) for t in texts if t and t.isdigit()) >= ROWS  # the counts, and no more
    else:  # predicted against actual: a point per row
        assert "train: predicted against actual" in texts
        assert len(list(root.iter(f"{SVG}circle"))) == ROWS


# --- task ----------------------------------------------------------------------------------

def test_task_is_inferred_from_the_target_and_an_explicit_task_overrides_it(outcomes):
    # Text labels and a float target: see test_each_kind_of_model_trains_prints_its_metrics_and_records_its_...
    inferred = succeeded(outcomes, "target by index, no header")
    assert inferred.description["task"] == "classification"  # a few whole numbers: classes
    assert inferred.description["classes"] == [0, 1, 2, 3, 4]
    assert set(inferred.metrics()["train"]) == CLASSIFICATION_METRICS

    explicit = succeeded(outcomes, "whole-number target, task regression")
    assert explicit.description["task"] == "regression"
    assert explicit.description["classes"] is None
    assert set(explicit.metrics()["train"]) == REGRESSION_METRICS


# --- input modes and content types ---------------------------------------------------------

def test_content_type_text_csv_is_accepted(outcomes):
    outcome = succeeded(outcomes, "forest classification")
    data_config = json.loads(config(outcome.ml, "inputdataconfig.json").read_text())
    assert data_config["training"]["ContentType"] == "text/csv"


@pytest.mark.parametrize("mode", ["FastFile", "Pipe"])
def test_fastfile_and_pipe_mode_train_the_same_model_as_file_mode(outcomes, mode):
    outcome = succeeded(outcomes, mode)
    file_mode = succeeded(outcomes, "forest classification")
    assert outcome.description["training_rows"] == ROWS
    assert outcome.description["metrics"] == file_mode.description["metrics"]
    if mode == "Pipe":
        assert "from the pipe training_0" in outcome.result.stderr


# --- multi-instance --------------------------------------------------------------------------

# Since training across hosts (test_multihost.py), an algorithm that declares no distribution is
# refused on every host of a job of several, the secondary as the first, instead of the secondary
# exiting 0 with nothing: see the "secondary host" case of REJECTED below.


# --- refused jobs ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", [case.param() for case in REJECTED])
def test_a_user_error_exits_1_with_a_reason_naming_the_problem_and_no_model(outcomes, case):
    outcome = outcomes[case.id]
    assert outcome.result.returncode == 1, outcome.result.stderr[-3000:]
    reason = outcome.failure()
    assert reason.startswith("UserError:"), reason
    for fragment in case.mentions:
        assert fragment in reason, reason
    assert "np." not in reason  # no numpy reprs in what the user reads
    assert outcome.metrics() == {}
    assert outcome.model_files() == []


# --- serving a model trained on text and missing values -------------------------------------

RAW_ROWS = "0.5,purple,3.2\n,red,\n1.2,,7.5\n-0.3,blue,1.0\n"  # an unknown category and empty cells
RAW_FRAME = pd.DataFrame([[0.5, "purple", 3.2], [np.nan, "red", np.nan], [1.2, np.nan, 7.5], [-0.3, "blue", 1.0]],
                         columns=FEATURES)
RECORDS = [{"size": 0.5, "color": "purple", "weight": 3.2},
           {"size": None, "color": "red", "weight": None},
           {"size": 1.2, "color": None, "weight": 7.5}]
PROBABILITIES = {"X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"}


def test_served_classifier_answers_raw_rows_records_and_probabilities(outcomes, serve):
    outcome = succeeded(outcomes, "forest classification")
    model = joblib.load(outcome.model_dir / "model.joblib")
    server = serve(base_dir=outcome.ml, env={"MODEL_SERVER_WORKERS": "1"})

    answer = server.invoke(RAW_ROWS)
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines() == list(model.predict(RAW_FRAME))

    answer = server.invoke(json.dumps(RECORDS), "application/json", Accept="application/json")
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == list(model.predict(RAW_FRAME.iloc[:3]))

    answer = server.invoke(RAW_ROWS, **PROBABILITIES)
    assert answer.status_code == 200, answer.text
    served = np.array([[float(p) for p in line.split(",")] for line in answer.text.splitlines()])
    np.testing.assert_allclose(served, model.predict_proba(RAW_FRAME), atol=1e-9)

    answer = server.invoke(json.dumps(RECORDS), "application/json", Accept="application/json", **PROBABILITIES)
    assert answer.status_code == 200, answer.text
    rows = answer.json()["predictions"]
    assert [sorted(row) for row in rows] == [CLASSES] * 3
    assert all(sum(row.values()) == pytest.approx(1.0) for row in rows)


def test_served_regressor_answers_numbers_and_refuses_probabilities(outcomes, serve):
    outcome = succeeded(outcomes, "forest regression")
    model = joblib.load(outcome.model_dir / "model.joblib")
    server = serve(base_dir=outcome.ml, env={"MODEL_SERVER_WORKERS": "1"})

    answer = server.invoke(RAW_ROWS)
    assert answer.status_code == 200, answer.text
    values = [float(line) for line in answer.text.splitlines()]
    np.testing.assert_allclose(values, model.predict(RAW_FRAME), rtol=1e-9)

    answer = server.invoke(json.dumps(RECORDS), "application/json", Accept="application/json")
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(answer.json()["predictions"], model.predict(RAW_FRAME.iloc[:3]), rtol=1e-9)

    answer = server.invoke(RAW_ROWS, **PROBABILITIES)
    assert answer.status_code == 400
    assert "probabilities" in answer.text and "Traceback" not in answer.text


# --- checkpoints ----------------------------------------------------------------------------

CHECKPOINTED = {"algorithm": "forest", "n_estimators": "200", "checkpoint_steps": "10", "max_depth": "8",
                "random_state": "7", "target": "label"}
CHECKPOINT_ROWS = 8_000  # a tenth of the forest takes a fraction of a second: a stop lands mid-fit


def checkpoint_files(ml: Path) -> list[Path]:
    return sorted((ml / "checkpoints").glob("checkpoint-*.joblib"))


def start_train(fork: Path, ml: Path) -> tuple[subprocess.Popen, Path]:
    log = ml.parent / f"train-{len(list(ml.parent.glob('train-*.log')))}.log"
    return forks.start_train(fork, ml, log), log


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


@dataclass
class Checkpointed:
    stopped_code: int
    stopped_failure: str
    stopped_model_files: list[str]
    stopped_checkpoints: list[str]
    resumed: Outcome  # the stopped job run again on its folder
    fresh: Outcome  # the same job, uninterrupted, in a fresh folder without checkpoints
    corrupted: Outcome  # a copy of the stopped job whose newest checkpoint was damaged


@pytest.fixture(scope="module")
def checkpointed(fork, tmp_path_factory) -> Checkpointed:
    root = tmp_path_factory.mktemp("checkpoints")
    arrange = job(table("classification", rows=CHECKPOINT_ROWS, seed=3, missing=False), **CHECKPOINTED)
    stopped, fresh = (copy_test_dir(root / name / "ml") for name in ("stopped", "fresh"))
    corrupted = root / "corrupted" / "ml"
    for ml in (stopped, fresh):
        arrange(ml)
    (stopped / "checkpoints").mkdir()

    fresh_run, fresh_log = start_train(fork, fresh)  # on its own, meanwhile
    process, log = start_train(fork, stopped)
    try:
        def two_checkpoints() -> bool:
            assert process.poll() is None, f"train ended before it was stopped:\n{log.read_text()}"
            return len(checkpoint_files(stopped)) >= 2  # a newest and the one before it
        wait_until(two_checkpoints, 120, what="two checkpoints")
        process.send_signal(signal.SIGTERM)
        stopped_code = process.wait(30)
        assert "grew to" in log.read_text()
        failure = (stopped / "output" / "failure").read_text()
        model_files = sorted(p.name for p in (stopped / "model").iterdir())
        saved = checkpoint_files(stopped)

        shutil.copytree(stopped, corrupted)
        (corrupted / "checkpoints" / saved[-1].name).write_bytes(b"not a checkpoint: cut off mid-upload")
        (corrupted / "output" / "failure").unlink()
        (stopped / "output" / "failure").unlink()  # the next job's own outcome, not the stop's
        with ThreadPoolExecutor(max_workers=2) as pool:
            resumed, damaged = pool.map(lambda ml: Outcome(ml, forks.run_train(fork, ml)), [stopped, corrupted])
        code = fresh_run.wait(300)
    finally:
        kill(process)
        kill(fresh_run)
    fresh_outcome = Outcome(fresh, subprocess.CompletedProcess([], code, fresh_log.read_text(), fresh_log.read_text()))
    return Checkpointed(stopped_code, failure, model_files, [p.name for p in saved], resumed, fresh_outcome, damaged)


def test_sigterm_after_a_checkpoint_exits_143_naming_the_checkpoint_to_resume_from(checkpointed):
    assert checkpointed.stopped_code == 143
    reason = checkpointed.stopped_failure
    assert reason.count("\n") <= 1 and reason.startswith("Stopped:") and "SIGTERM" in reason
    assert "checkpoint-" in reason and "resumes" in reason
    assert checkpointed.stopped_model_files == []


def test_a_stopped_job_run_again_resumes_and_predicts_like_an_uninterrupted_one(checkpointed):
    resumed, fresh = checkpointed.resumed, checkpointed.fresh
    assert resumed.result.returncode == 0, resumed.result.stderr[-3000:]
    assert fresh.result.returncode == 0, fresh.result.stderr[-3000:]
    newest = checkpointed.stopped_checkpoints[-1]
    assert f"resuming from checkpoint {newest}" in resumed.result.stderr
    assert "resuming" not in fresh.result.stderr
    assert resumed.description["hyperparameters"]["n_estimators"] == 200

    rows = table("classification", rows=50, seed=99, missing=False).drop(columns="label")
    expected = joblib.load(fresh.model_dir / "model.joblib").predict_proba(rows)
    np.testing.assert_allclose(joblib.load(resumed.model_dir / "model.joblib").predict_proba(rows), expected,
                               rtol=0, atol=1e-12)


def test_a_damaged_newest_checkpoint_is_skipped_for_the_one_before_it(checkpointed):
    damaged, fresh = checkpointed.corrupted, checkpointed.fresh
    assert damaged.result.returncode == 0, damaged.result.stderr[-3000:]
    previous, newest = checkpointed.stopped_checkpoints[-2:]
    assert f"ignoring checkpoint {newest}: it cannot be read" in damaged.result.stderr
    assert f"resuming from checkpoint {previous}" in damaged.result.stderr

    rows = table("classification", rows=50, seed=99, missing=False).drop(columns="label")
    expected = joblib.load(fresh.model_dir / "model.joblib").predict_proba(rows)
    np.testing.assert_allclose(joblib.load(damaged.model_dir / "model.joblib").predict_proba(rows), expected,
                               rtol=0, atol=1e-12)
