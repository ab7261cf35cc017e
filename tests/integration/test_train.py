"""The real `algo/train` as SageMaker runs it, against a temporary /opt/ml, with whatever algorithm.py
holds: what is asserted here is the plumbing (files, exit codes, failure reasons, metric lines), not
the algorithm's numbers, so a fork keeps these tests.

Every run pays about two seconds of importing scikit-learn and pandas, so the scenarios below
are arranged up front and run concurrently once per module (`outcomes`); each test then reads
the outcome of its own scenario. The SIGTERM test runs on its own because it times the stop.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pytest

from support import JOB, copy_test_dir, host_env, plumbing_algo, run_train, wait_until

TRAIN_METRIC = re.compile(r"train:accuracy=([0-9\.]+);")
VALIDATION_METRIC = re.compile(r"validation:accuracy=([0-9\.]+);")
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
IRIS_TRAINING = (JOB / "input" / "data" / "training" / "rows.csv").read_text()
IRIS_ROWS = IRIS_TRAINING.splitlines()  # 120 rows: label, then four features
FAILURE_REASON_LIMIT = 1024

Arrange = Callable[[Path], None]


# --- building a job's /opt/ml -------------------------------------------------------------

def config(ml: Path, name: str) -> Path:
    return ml / "input" / "config" / name


def channel(ml: Path, name: str = "training") -> Path:
    return ml / "input" / "data" / name


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value))


def set_hyperparameters(values: dict[str, str]) -> Arrange:
    return lambda ml: write_json(config(ml, "hyperparameters.json"), values)


def set_config_text(name: str, text: str) -> Arrange:
    return lambda ml: config(ml, name).write_text(text)


def set_files(files: dict[str, str | bytes], name: str = "training") -> Arrange:
    """Replace a channel's files with these (paths relative to the channel folder)."""
    def arrange(ml: Path) -> None:
        folder = channel(ml, name)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for relative, content in files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                content = content.encode()
            path.write_bytes(content)
    return arrange


def drop_channel(name: str) -> Arrange:
    def arrange(ml: Path) -> None:
        shutil.rmtree(channel(ml, name))
        path = config(ml, "inputdataconfig.json")
        data_config = json.loads(path.read_text())
        del data_config[name]
        write_json(path, data_config)
    return arrange


def set_content_type(content_type: str) -> Arrange:
    def arrange(ml: Path) -> None:
        path = config(ml, "inputdataconfig.json")
        data_config = json.loads(path.read_text())
        data_config["training"]["ContentType"] = content_type
        write_json(path, data_config)
    return arrange


def set_hosts(current: str, hosts: list[str]) -> Arrange:
    def arrange(ml: Path) -> None:
        write_json(config(ml, "resourceconfig.json"),
                   {"current_host": current, "hosts": hosts, "network_interface_name": "eth0"})
    return arrange


def remove_config_files(ml: Path) -> None:
    for name in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
        config(ml, name).unlink()


def iris(rows: list[str] = IRIS_ROWS) -> str:
    return "\n".join(rows) + "\n"


def iris_with(line: int, row: str) -> str:
    """The tests' iris training rows with 1-based `line` replaced."""
    rows = list(IRIS_ROWS)
    rows[line - 1] = row
    return iris(rows)


def nothing(ml: Path) -> None:
    pass


# --- running the scenarios ----------------------------------------------------------------

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

    def failure(self) -> str:
        return (self.ml / "output" / "failure").read_text()


ACCEPTED: dict[str, Arrange] = {
    "iris": nothing,
    "no validation channel": drop_channel("validation"),
    "no config files": remove_config_files,
    "SDK JSON-encoded hyperparameters": set_hyperparameters(
        {"checkpoint_steps": '"3"', "task": '"classification"', "header": '"false"'}),
    "keys added by SageMaker": set_hyperparameters({
        "checkpoint_steps": "5", "_tuning_objective_metric": "validation:accuracy",
        "sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://bucket/code.tar.gz"'}),
    "nested folders": set_files({"2024/01/part-0001/rows.csv": iris()}),
    "gzipped csv": set_files({"rows.csv.gz": gzip.compress(iris().encode())}),
    "hidden files": set_files({
        "rows.csv": iris(), ".broken.csv": "not,a\nvalid,csv,file\n",
        ".cache/stale.csv.gz": b"not gzip", "_SUCCESS": ""}),
    "several files": set_files({
        "part-0.csv": iris(IRIS_ROWS[:40]), "part-1.csv.gz": gzip.compress(iris(IRIS_ROWS[40:80]).encode()),
        "more/part-2.csv": iris(IRIS_ROWS[80:])}),
    "content type with parameters": set_content_type("text/csv; charset=utf-8"),
    "secondary host": set_hosts("algo-2", ["algo-2", "algo-1"]),
    "first host": set_hosts("algo-1", ["algo-2", "algo-1"]),
}


@dataclass(frozen=True)
class Rejected:
    """Input the job must refuse: its exit code and what the failure reason must name."""

    id: str
    arrange: Arrange
    mentions: tuple[str, ...]
    exit_code: int = 1
    kind: str = "UserError:"
    bug: str = ""  # set while the job gets this case wrong: the test is then a strict xfail

    def param(self):
        marks = pytest.mark.xfail(reason=f"BUG: {self.bug}", strict=True) if self.bug else ()
        return pytest.param(self, id=self.id, marks=marks)


REJECTED = [
    Rejected("missing training channel", drop_channel("training"), ("'training'", "missing")),
    Rejected("empty training folder", set_files({}), ("'training'", "no .csv, .csv.gz or Parquet files")),
    Rejected("only files that are not csv or parquet",
             set_files({"iris.json": b"{}", "notes.txt": "iris"}),
             ("no .csv, .csv.gz or Parquet files", "iris.json", "notes.txt")),
    Rejected("a parquet file that is not parquet", set_files({"iris.parquet": b"PAR1"}),
             ("iris.parquet", "not a readable Parquet file")),
    Rejected("only empty files",
             set_files({"empty.csv": "", "blank.csv": "\n\n", "empty.csv.gz": gzip.compress(b"")}),
             ("'training'", "no data rows")),
    Rejected("a longer row", set_files({"rows.csv": iris_with(3, "setosa,4.7,3.2,1.3,0.2,9.9")}),
             ("rows.csv", "line 3 has 6 fields", "line 1 has 5")),
    Rejected("a shorter row", set_files({"rows.csv": iris_with(5, "setosa,5.0,3.6,1.4")}),
             ("rows.csv", "line 5 has 4 fields", "line 1 has 5")),
    Rejected("non-numeric feature", set_files({"rows.csv": iris_with(4, "setosa,4.6,abc,1.5,0.2")}),
             ("rows.csv", "'abc'", "'column_3'", "data row 4")),
    Rejected("a header row",
             set_files({"rows.csv": "species,sepal_length,sepal_width,petal_length,petal_width\n" + iris()}),
             ("rows.csv", "'sepal_length'", "'column_2'", "data row 1")),
    Rejected("infinite feature", set_files({"rows.csv": iris_with(6, "setosa,inf,3.9,1.7,0.4")}),
             ("rows.csv", "'column_2'", "data row 6", "infinite")),
    Rejected("feature too large for the tree", set_files({"rows.csv": iris_with(6, "setosa,5.4,1e39,1.7,0.4")}),
             ("rows.csv", "'column_3'", "data row 6", "too large")),
    Rejected("unknown hyperparameter", set_hyperparameters({"no_such_parameter": "0.1"}),
             ("'no_such_parameter'", "for algorithm '", "allowed: ", "checkpoint_steps", "target", "task")),
    Rejected("hyperparameter not an integer", set_hyperparameters({"checkpoint_steps": "three"}),
             ("'checkpoint_steps'", "an integer", "'three'")),
    Rejected("negative hyperparameter", set_hyperparameters({"checkpoint_steps": "-1"}),
             ("'checkpoint_steps'", ">= 1", "'-1'")),
    Rejected("hyperparameter not one of its choices", set_hyperparameters({"task": "clustering"}),
             ("'task'", "'classification'", "'regression'", "'clustering'")),
    Rejected("an algorithm not in the catalogue", set_hyperparameters({"algorithm": "no_such_algorithm"}),
             ("'algorithm'", "must be one of", "'no_such_algorithm'")),
    Rejected("hyperparameters.json not JSON", set_config_text("hyperparameters.json", "max_depth=3"),
             ("hyperparameters.json", "not valid JSON")),
    Rejected("hyperparameters.json a JSON list",
             set_config_text("hyperparameters.json", '["max_depth", "3"]'),
             ("hyperparameters.json", "JSON object", "list")),
    Rejected("failure reason longer than its limit",
             set_hyperparameters({f"unknown_{i:03d}_" + "x" * 200: "1" for i in range(20)}),
             ("unknown hyperparameters", "'unknown_000_")),
    Rejected("inputdataconfig.json not JSON", set_config_text("inputdataconfig.json", "{training:"),
             ("inputdataconfig.json", "not valid JSON")),
    Rejected("unsupported content type", set_content_type("application/x-recordio-protobuf"),
             ("'training'", "application/x-recordio-protobuf", "text/csv", "application/x-parquet")),
    Rejected("truncated gzip", set_files({"rows.csv.gz": gzip.compress(iris().encode())[:200]}),
             ("rows.csv.gz", "truncated or corrupt gzip")),
    Rejected("gz file that is not gzip", set_files({"rows.csv.gz": iris()}),
             ("rows.csv.gz", "gzip")),
    Rejected("one class", set_files({"rows.csv": iris(IRIS_ROWS[:40])}),
             ("one class",)),
    Rejected("a single column", set_files({"rows.csv": iris([row.split(",")[0] for row in IRIS_ROWS])}),
             ("rows.csv", "1 column", "a target and at least one feature")),
    Rejected("files with different columns",
             set_files({"a.csv": iris(IRIS_ROWS[:60]),
                        "b.csv": iris([row.rsplit(",", 1)[0] for row in IRIS_ROWS[60:]])}),
             ("b.csv", "4 columns", "a.csv", "5")),
    Rejected("validation with another feature count",
             set_files({"rows.csv": iris([row.rsplit(",", 1)[0] for row in IRIS_ROWS])}, "validation"),
             ("validation", "3 features", "4")),
    Rejected("missing label", set_files({"rows.csv": iris_with(2, ",4.9,3,1.4,0.2")}),
             ("rows.csv", "data row 2", "no value in the target column")),
    Rejected("invalid UTF-8", set_files({"rows.csv": iris_with(7, "set\udcffosa,4.6,3.4,1.4,0.3")
                                         .encode("utf-8", "surrogateescape")}),
             ("rows.csv", "UTF-8")),
    Rejected("invalid UTF-8 in a quoted field",
             set_files({"rows.csv": iris_with(3, '"set\udcffosa",4.7,3.2,1.3,0.2')
                        .encode("utf-8", "surrogateescape")}),
             ("rows.csv", "UTF-8")),
]


def scenarios() -> dict[str, Arrange]:
    return {**ACCEPTED, **{case.id: case.arrange for case in REJECTED}}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Every scenario, arranged in its own /opt/ml and trained concurrently."""
    def run(item: tuple[int, tuple[str, Arrange]]) -> tuple[str, Outcome]:
        index, (name, arrange) = item
        ml = copy_test_dir(tmp_path_factory.mktemp(f"scenario{index}") / "ml")
        arrange(ml)
        return name, Outcome(ml, run_train(ml, timeout=300))

    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) + 1) as pool:
        return dict(pool.map(run, enumerate(scenarios().items())))


def succeeded(outcomes: dict[str, Outcome], name: str) -> Outcome:
    outcome = outcomes[name]
    assert outcome.result.returncode == 0, outcome.result.stderr
    assert not (outcome.ml / "output" / "failure").exists()
    return outcome


def model_left(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


# --- success ------------------------------------------------------------------------------

def test_the_iris_job_exits_zero_and_prints_train_and_validation_accuracy(outcomes):
    lines = succeeded(outcomes, "iris").result.stdout.splitlines()
    [train] = [float(m.group(1)) for m in map(TRAIN_METRIC.fullmatch, lines) if m]  # one line each
    [validation] = [float(m.group(1)) for m in map(VALIDATION_METRIC.fullmatch, lines) if m]
    assert 0.0 <= train <= 1.0 and 0.0 <= validation <= 1.0


def test_the_iris_job_saves_a_model_that_predicts_iris_classes_as_strings(outcomes):
    outcome = succeeded(outcomes, "iris")
    assert model_left(outcome.model_dir) == ["model.joblib", "model.json", "model.skops"]
    model = joblib.load(outcome.model_dir / "model.joblib")
    predictions = model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    assert len(predictions) == 2 and set(predictions) <= set(IRIS_CLASSES)
    assert all(isinstance(p, str) for p in predictions)


def test_the_iris_job_describes_its_model_in_model_json(outcomes):
    outcome = succeeded(outcomes, "iris")
    description = outcome.description
    assert description["model_file"] == "model.joblib"
    assert description["n_features"] == 4
    assert description["classes"] == IRIS_CLASSES
    assert description["training_rows"] == 120
    assert description["format_version"] == 2
    hyperparameters = json.loads(config(outcome.ml, "hyperparameters.json").read_text())
    assert set(hyperparameters) <= set(description["hyperparameters"])
    assert description["hyperparameters"]["checkpoint_steps"] == 10  # defaults filled in
    assert [c["name"] for c in description["input"]["columns"]] == description["feature_names"]
    assert {"python", "scikit-learn", "numpy", "pandas", "joblib"} <= description["versions"].keys()
    assert set(description["metrics"]) == {"train", "validation"}


def test_without_a_validation_channel_only_train_metrics_are_printed(outcomes):
    outcome = succeeded(outcomes, "no validation channel")
    assert TRAIN_METRIC.search(outcome.result.stdout)
    assert not VALIDATION_METRIC.search(outcome.result.stdout)
    assert set(outcome.description["metrics"]) == {"train"}


def test_missing_config_files_mean_defaults(outcomes):
    outcome = succeeded(outcomes, "no config files")
    hyperparameters = outcome.description["hyperparameters"]
    assert (hyperparameters["task"], hyperparameters["target"], hyperparameters["checkpoint_steps"]) == (None, None, 10)
    assert VALIDATION_METRIC.search(outcome.result.stdout)  # the folder alone makes the channel


def test_json_encoded_hyperparameters_from_the_python_sdk_are_decoded(outcomes):
    hyperparameters = succeeded(outcomes, "SDK JSON-encoded hyperparameters").description["hyperparameters"]
    assert (hyperparameters["checkpoint_steps"], hyperparameters["task"], hyperparameters["header"]) == (
        3, "classification", False)


def test_tuning_and_sdk_keys_are_ignored(outcomes):
    hyperparameters = succeeded(outcomes, "keys added by SageMaker").description["hyperparameters"]
    assert hyperparameters["checkpoint_steps"] == 5
    assert not any(name.startswith(("_", "sagemaker_")) for name in hyperparameters)


@pytest.mark.parametrize("name", ["nested folders", "gzipped csv", "hidden files", "several files"])
def test_reads_every_visible_csv_and_csv_gz_under_the_channel(outcomes, name):
    description = succeeded(outcomes, name).description
    assert description["training_rows"] == 120
    assert description["classes"] == IRIS_CLASSES


def test_content_type_parameters_are_accepted(outcomes):
    succeeded(outcomes, "content type with parameters")


@pytest.mark.parametrize("host", ["secondary host", "first host"])
def test_an_algorithm_that_trains_on_one_host_is_refused_on_every_host_of_several(outcomes, host):
    # The bundled job's algorithm (decision_tree) declares no way to distribute; test_multihost.py
    # trains the ones that do.
    outcome = outcomes[host]
    assert outcome.result.returncode == 1
    assert "set instance_count=1" in outcome.failure()
    assert model_left(outcome.model_dir) == []


# --- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("case", [case.param() for case in REJECTED])
def test_bad_input_fails_with_a_reason_naming_the_problem_and_leaves_no_model(outcomes, case):
    outcome = outcomes[case.id]
    assert outcome.result.returncode == case.exit_code, outcome.result.stderr
    reason = outcome.failure()
    assert reason.count("\n") <= 1 and len(reason.rstrip("\n")) <= FAILURE_REASON_LIMIT
    assert reason.startswith(case.kind), reason
    for fragment in case.mentions:
        assert fragment in reason, reason
    assert reason[len(case.kind):].strip()[:60] in " ".join(outcome.result.stderr.split())
    assert not TRAIN_METRIC.search(outcome.result.stdout)
    assert model_left(outcome.model_dir) == []  # no model files, no .staging-* folders


def test_a_long_failure_reason_is_cut_to_the_1024_characters_sagemaker_shows(outcomes):
    reason = outcomes["failure reason longer than its limit"].failure()
    assert len(reason.rstrip("\n")) == FAILURE_REASON_LIMIT


# --- stopping -----------------------------------------------------------------------------

def random_csv(rows: int, seed: int = 0) -> bytes:
    """`rows` rows like `b,4.127,0.503,7.291,2.068` with random labels: a tree that takes long to fit.

    Built as a byte matrix: formatting millions of floats would take longer than the whole test.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((rows, 26), dtype=np.uint8)
    out[:, 0] = rng.integers(0, 3, rows) + ord("a")
    for feature in range(4):
        start = 1 + 6 * feature
        out[:, start] = ord(",")
        out[:, start + 2] = ord(".")
        out[:, [start + 1, start + 3, start + 4, start + 5]] = rng.integers(0, 10, (rows, 4)) + ord("0")
    out[:, -1] = ord("\n")
    return out.tobytes()


def test_sigterm_during_a_long_fit_stops_promptly_with_143_and_no_model(base_dir):
    set_files({"random.csv": random_csv(500_000)})(base_dir)
    drop_channel("validation")(base_dir)
    write_json(config(base_dir, "hyperparameters.json"), {})  # a fully grown tree: a long fit
    log_path = base_dir.parent / "train.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(plumbing_algo() / "train")], env=host_env(base_dir),
                                   stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_until(lambda: "fit started" in log_path.read_text() or process.poll() is not None,
                   timeout=60, what="the fit to start")
        assert process.poll() is None, log_path.read_text()
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = process.wait(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 143, log_path.read_text()
    assert elapsed < 5
    reason = (base_dir / "output" / "failure").read_text()
    assert reason.count("\n") <= 1 and "stopped" in reason.lower() and "SIGTERM" in reason
    assert model_left(base_dir / "model") == []
