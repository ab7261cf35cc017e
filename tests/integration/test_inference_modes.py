"""The real `algo/serve` (nginx and gunicorn) in each way SageMaker uses it: the request and answer
formats, class probabilities, batch transform, a serial inference pipeline, and what the log says.

Every configuration is one server shared by the tests of this module (a module-scoped fixture);
a test that needs a fresh log or other settings has a server of its own.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from sklearn.tree import DecisionTreeClassifier

from support import JOB, Server, copy_test_dir, have_nginx, require, wait_until

MB = 1024 * 1024
ROW = b"5.1,3.5,1.4,0.2\n"  # 16 bytes: bodies of an exact size are whole rows
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
PROBABILITIES = {CUSTOM_ATTRIBUTES: "output=probabilities"}
CLASSES = ["setosa", "versicolor", "virginica"]
OFFERED = ["text/csv", "application/json", "application/jsonlines"]

IRIS_LINES = [line.split(",", 1)[1] for line in
              (JOB / "input" / "data" / "training" / "rows.csv").read_text().splitlines() if line]
IRIS = np.array([[float(cell) for cell in line.split(",")] for line in IRIS_LINES])
ROWS = IRIS[::8]  # 15 rows, all three species (the file is sorted by species)


# -- helpers ----------------------------------------------------------------------------------

def csv_body(rows: np.ndarray) -> str:
    return "".join(",".join(map(repr, row)) + "\n" for row in rows.tolist())


def npy_body(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def assert_refused(response: requests.Response, status: int, *says: str) -> None:
    """A short text answer with the status, naming what is wrong."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "Traceback" not in response.text
    for words in says:
        assert words in response.text, response.text


def csv_floats(text: str) -> np.ndarray:
    return np.array([[float(cell) for cell in row] for row in csv.reader(io.StringIO(text))])


@contextmanager
def running(base_dir: Path, nginx: bool = True, **env: str) -> Iterator[Server]:
    if nginx:
        require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    server = Server(base_dir, nginx=nginx, env=env)
    try:
        yield server.start()
    finally:
        server.stop()


def process_tree(pid: int) -> set[int]:
    """`pid` and every process descended from it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    tree, grew = {pid}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def listening_tcp_ports(pids: set[int]) -> set[int]:
    """The TCP ports (IPv4 and IPv6) on which a socket held by one of `pids` is listening."""
    inodes = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                match = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
            except OSError:
                continue
            if match:
                inodes.add(match.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_address, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A is TCP_LISTEN
                ports.add(int(local_address.rsplit(":", 1)[1], 16))
    return ports


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model(trained_dir: Path):
    return joblib.load(trained_dir / "model" / "model.joblib")


@pytest.fixture(scope="module")
def labels(model) -> Callable[[np.ndarray], list[str]]:
    return lambda rows: [str(label) for label in model.predict(rows)]


@pytest.fixture(scope="module")
def server(trained_dir: Path):
    """The real-time defaults: nginx, two workers, 6 MB, CSV out."""
    with running(trained_dir) as started:
        yield started


@pytest.fixture(scope="module")
def json_default_server(trained_dir: Path):
    with running(trained_dir, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/json") as started:
        yield started


@pytest.fixture(scope="module")
def probabilities_server(trained_dir: Path):
    with running(trained_dir, SAGEMAKER_INFERENCE_OUTPUT="probabilities") as started:
        yield started


@pytest.fixture(scope="module")
def batch_server(trained_dir: Path):
    """As a batch transform starts it, with MaxPayloadInMB=20 in the CreateTransformJob request."""
    with running(trained_dir, SAGEMAKER_BATCH="true", SAGEMAKER_MAX_PAYLOAD_IN_MB="20") as started:
        yield started


@pytest.fixture(scope="module")
def second_stage_server(tmp_path_factory, model):
    """The next container of a pipeline: a model that labels the first model's 3 class probabilities."""
    base = copy_test_dir(tmp_path_factory.mktemp("second_stage") / "ml")
    second = DecisionTreeClassifier(random_state=0).fit(model.predict_proba(IRIS), model.predict(IRIS))
    joblib.dump(second, base / "model" / "model.joblib")
    with running(base) as started:
        yield started, second


# -- formats in -------------------------------------------------------------------------------

def _jsonlines(items) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


BODIES: dict[str, tuple[str, Callable[[np.ndarray], str | bytes]]] = {
    "json_list_of_rows": ("application/json", lambda rows: json.dumps(rows.tolist())),
    "json_instances": ("application/json", lambda rows: json.dumps({"instances": rows.tolist()})),
    "json_inputs": ("application/json", lambda rows: json.dumps({"inputs": rows.tolist()})),
    "json_features_rows": ("application/json",
                           lambda rows: json.dumps([{"features": row} for row in rows.tolist()])),
    "json_instances_of_features_rows": (
        "application/json", lambda rows: json.dumps({"instances": [{"features": row} for row in rows.tolist()]})),
    "jsonlines_lists": ("application/jsonlines", lambda rows: _jsonlines(rows.tolist())),
    "jsonlines_features": ("application/jsonlines",
                           lambda rows: _jsonlines({"features": row} for row in rows.tolist())),
    "npy_2d_float": ("application/x-npy", lambda rows: npy_body(rows)),
    "csv": ("text/csv", csv_body),
}


@pytest.mark.parametrize(("content_type", "encode"), BODIES.values(), ids=BODIES.keys())
def test_every_input_format_gets_the_labels_the_model_predicts_for_the_same_rows(
        server: Server, labels, content_type: str, encode):
    response = server.invoke(encode(ROWS), content_type, Accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == labels(ROWS)


SINGLE_ROWS = {
    "json_row": lambda row: json.dumps(row),
    "json_features_object": lambda row: json.dumps({"features": row}),
    "json_instances_row": lambda row: json.dumps({"instances": row}),
}


@pytest.mark.parametrize("encode", SINGLE_ROWS.values(), ids=SINGLE_ROWS.keys())
def test_a_single_json_row_gets_one_label(server: Server, labels, encode):
    row = ROWS[-1]
    response = server.invoke(encode(row.tolist()), "application/json", Accept="text/csv")
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == labels(row.reshape(1, -1))


NAMED_FEATURES = {
    "json_records": ("application/json",
                     json.dumps([{"a": 5.1, "b": 3.5, "c": 1.4, "d": 0.2}])),
    "json_split_orientation": ("application/json",
                               json.dumps({"columns": ["a", "b", "c", "d"], "data": [[5.1, 3.5, 1.4, 0.2]]})),
    "jsonlines_records": ("application/jsonlines", '{"a": 5.1, "b": 3.5, "c": 1.4, "d": 0.2}\n'),
}


@pytest.mark.parametrize(("content_type", "body"), NAMED_FEATURES.values(), ids=NAMED_FEATURES.keys())
def test_named_features_that_are_not_the_models_get_400_naming_the_expected_ones(
        server: Server, content_type: str, body: str):
    # trained without a header, the model's features are named by CSV position: column_2, ...
    assert_refused(server.invoke(body, content_type), 400, "missing 'column_2'")


class _MakesADirectoryWhenUnpickled:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_npy_of_python_objects_gets_400_and_is_never_unpickled(server: Server, tmp_path: Path):
    marker = tmp_path / "unpickled"
    objects = np.empty((1, 4), dtype=object)
    objects[0] = [_MakesADirectoryWhenUnpickled(marker), 3.5, 1.4, 0.2]
    assert_refused(server.invoke(npy_body(objects, allow_pickle=True), "application/x-npy"), 400, "Python objects")
    assert not marker.exists(), "the server unpickled the request body"


# -- formats out ------------------------------------------------------------------------------

def _read_answer(content_type: str, text: str) -> list:
    if content_type == "application/json":
        body = json.loads(text)
        assert list(body) == ["predictions"]
        return body["predictions"]
    if content_type == "application/jsonlines":
        return [json.loads(line) for line in text.splitlines()]
    assert content_type == "text/csv"
    return [row[0] for row in csv.reader(io.StringIO(text))]


ACCEPTS = {
    "json": ("application/json", "application/json"),
    "jsonlines": ("application/jsonlines", "application/jsonlines"),
    "csv": ("text/csv", "text/csv"),
    "json_at_q_half_loses_to_csv": ("application/json;q=0.5, text/csv", "text/csv"),
    "missing": (None, "text/csv"),
    "anything": ("*/*", "text/csv"),
}


@pytest.mark.parametrize(("accept", "answer_type"), ACCEPTS.values(), ids=ACCEPTS.keys())
def test_accept_chooses_the_answer_format_and_content_type_names_it(
        server: Server, labels, accept: str | None, answer_type: str):
    response = server.invoke(csv_body(ROWS), Accept=accept)  # None: requests sends no Accept
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == answer_type
    assert _read_answer(answer_type, response.text) == labels(ROWS)


@pytest.mark.parametrize("accept", [None, "*/*"], ids=["missing", "anything"])
def test_default_invocations_accept_sets_the_answer_format_when_the_caller_has_no_preference(
        json_default_server: Server, labels, accept: str | None):
    response = json_default_server.invoke(csv_body(ROWS), Accept=accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"predictions": labels(ROWS)}

    asked = json_default_server.invoke(csv_body(ROWS), Accept="text/csv")
    assert asked.headers["Content-Type"] == "text/csv"
    assert asked.text.splitlines() == labels(ROWS)


def test_accept_of_an_unoffered_type_gets_406_naming_the_offered_types(server: Server):
    assert_refused(server.invoke(csv_body(ROWS), Accept="application/xml"), 406, "application/xml", *OFFERED)


# -- probabilities ----------------------------------------------------------------------------

def test_the_model_orders_its_classes_alphabetically(model):
    assert [str(c) for c in model.classes_] == CLASSES  # what the probability tests rely on


def test_output_probabilities_answers_csv_rows_of_class_probabilities_in_class_order(server: Server, model):
    response = server.invoke(csv_body(ROWS), Accept="text/csv", **PROBABILITIES)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    probabilities = csv_floats(response.text)
    assert probabilities.shape == (len(ROWS), 3)
    np.testing.assert_array_equal(probabilities, model.predict_proba(ROWS))
    assert ((0 < probabilities) & (probabilities < 1)).any(), "some rows should not be one-hot"


def test_output_probabilities_in_json_names_each_class(server: Server, model):
    response = server.invoke(csv_body(ROWS), Accept="application/json", **PROBABILITIES)
    assert response.status_code == 200, response.text
    expected = [dict(zip(CLASSES, row, strict=True)) for row in model.predict_proba(ROWS).tolist()]
    assert response.json() == {"predictions": expected}


def test_inference_output_probabilities_is_the_default_without_the_header(probabilities_server: Server, model,
                                                                           labels):
    response = probabilities_server.invoke(csv_body(ROWS))
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(csv_floats(response.text), model.predict_proba(ROWS))

    labelled = probabilities_server.invoke(csv_body(ROWS), **{CUSTOM_ATTRIBUTES: "output=predictions"})
    assert labelled.text.splitlines() == labels(ROWS)


def test_an_unknown_output_attribute_gets_400(server: Server):
    response = server.invoke(csv_body(ROWS), **{CUSTOM_ATTRIBUTES: "output=bogus"})
    assert_refused(response, 400, "bogus", "output=probabilities")


# -- batch transform and body limits ----------------------------------------------------------

def test_batch_execution_parameters_report_workers_multi_record_and_the_payload_limit(batch_server: Server):
    response = requests.get(f"{batch_server.url}/execution-parameters", timeout=2)
    assert response.status_code == 200
    assert response.json() == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 20}


def test_batch_of_100000_csv_rows_answers_one_label_per_line_in_input_order(batch_server: Server, labels):
    rng = np.random.default_rng(0)
    order = rng.permutation(np.resize(np.arange(len(IRIS)), 100_000))
    body = "".join(IRIS_LINES[i] + "\n" for i in order)
    response = batch_server.invoke(body)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    # AssembleWith=Line joins these lines to the input's lines one for one.
    assert response.text.endswith("\n")
    assert response.text.splitlines() == labels(IRIS[order])


def test_batch_body_over_max_payload_in_mb_gets_413_naming_it(batch_server: Server):
    assert_refused(batch_server.invoke(ROW * (21 * MB // len(ROW))), 413, "20 MB")


def test_real_time_takes_a_body_just_under_6_mb(server: Server):
    body = ROW * (int(5.9 * MB) // len(ROW))
    response = server.invoke(body)
    assert response.status_code == 200, response.text
    assert response.text.count("\n") == len(body) // len(ROW)


def test_without_nginx_the_app_itself_answers_413_naming_the_limit(trained_dir: Path):
    with running(trained_dir, nginx=False, SAGEMAKER_MAX_PAYLOAD_IN_MB="1") as server:
        response = server.invoke(ROW * (int(1.5 * MB) // len(ROW)))
        assert_refused(response, 413, "1 MB")
        assert "-> 413" in server.log()  # the app refused it, not nginx


# -- inference pipelines ----------------------------------------------------------------------

def test_csv_labels_are_valid_csv_with_one_field_per_line(server: Server, labels):
    response = server.invoke(csv_body(ROWS))
    rows = list(csv.reader(io.StringIO(response.text)))
    assert all(len(row) == 1 for row in rows)
    assert [row[0] for row in rows] == labels(ROWS)


def test_csv_probabilities_are_valid_csv_input_for_the_next_container(server: Server, second_stage_server, model):
    second, second_model = second_stage_server
    first = server.invoke(csv_body(ROWS), **PROBABILITIES)
    assert first.status_code == 200, first.text

    response = second.invoke(first.content, first.headers["Content-Type"])
    assert response.status_code == 200, response.text
    expected = [str(label) for label in second_model.predict(model.predict_proba(ROWS))]
    assert response.text.splitlines() == expected


def test_serve_listens_on_the_bind_to_port_and_no_other_tcp_port(server: Server):
    assert server.invoke(csv_body(ROWS)).status_code == 200  # the workers are up
    processes = process_tree(server.process.pid)
    assert len(processes) >= 5, "serve, gunicorn with 2 workers, and nginx with a worker"
    assert listening_tcp_ports(processes) == {server.port}


# -- logs -------------------------------------------------------------------------------------

def test_log_has_an_access_line_per_invocation_a_warning_per_refusal_and_nothing_of_pings(trained_dir: Path):
    refusals = [
        (b"5.1,abc,1.4,0.2\n", "text/csv", {}, 400, "'abc' is not a number"),
        (csv_body(ROWS), "text/plain", {}, 415, "'text/plain' is not supported"),
        (csv_body(ROWS), "text/csv", {CUSTOM_ATTRIBUTES: "output=bogus"}, 400, "output='bogus'"),
    ]
    with running(trained_dir) as server:
        for _ in range(5):
            assert server.invoke(csv_body(ROWS)).status_code == 200
        for _ in range(10):
            assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200
        # nginx (one worker) has logged the requests above before it handles these
        for body, content_type, headers, status, _ in refusals:
            assert server.invoke(body, content_type, **headers).status_code == status

        def lines(pattern: str) -> list[str]:
            return [line for line in server.log().splitlines() if re.search(pattern, line)]

        wait_until(lambda: len(lines(r"\bWARNING\b")) >= len(refusals), 5, what="the refusals to be logged")
        assert len(lines(r'"POST /invocations HTTP/1\.1" 200 ')) == 5, server.log()
        warnings = lines(r"\bWARNING\b")
        assert len(warnings) == len(refusals), server.log()
        for line, (_, _, _, status, reason) in zip(warnings, refusals, strict=True):
            assert f"-> {status}" in line and reason in line, line
        assert lines("/ping") == []
        assert "model loaded" in server.log()


def test_log_level_warning_hides_the_info_start_up_lines(trained_dir: Path):
    with running(trained_dir, SAGEMAKER_CONTAINER_LOG_LEVEL="WARNING") as server:
        assert server.invoke(csv_body(ROWS)).status_code == 200  # the workers have booted
        assert server.invoke(b"oops", "text/plain").status_code == 415
        wait_until(lambda: "-> 415" in server.log(), 5, what="the refusal to be logged")
        log = server.log()
        assert "model loaded" not in log
        assert not re.search(r"\bINFO\b", log), log
