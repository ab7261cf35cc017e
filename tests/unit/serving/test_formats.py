"""The request and response formats beyond CSV: JSON, JSON Lines and .npy in, JSON and JSON Lines
out, class probabilities, and the measured input contract every request is checked against.

Tables first (decoders, encoders, contract, custom attributes), then the Flask app with the hooks of
algo/predictor.py, then one property: for random rows, every input format predicts exactly what the
model predicts on the same float64 rows. Tests marked xfail(strict) document bugs in algo/.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from sagemaker_byo.contract import UNKNOWN, Column, InputContract, conform, measure_loaded
from sagemaker_byo.errors import BadRequest
from sagemaker_byo.serving.decoders import DECODERS, decode
from sagemaker_byo.serving.encoders import encode
from sagemaker_byo.serving.invocation import (
    Probabilities,
    custom_attributes,
    probabilities,
    requested_output,
)
from support import IRIS_FEATURES

CLASSES = ("setosa", "versicolor", "virginica")
SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
PROBABILITIES_HEADER = {"X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"}
NAMES = list(IRIS_FEATURES)


def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def npy_header_only(shape: tuple[int, ...]) -> bytes:
    """A .npy header claiming `shape` of float64, followed by only 8 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(8)


def parquet_of(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def json_of(value) -> bytes:
    return json.dumps(value).encode()


def lines_of(values) -> bytes:
    return "".join(json.dumps(value) + "\n" for value in values).encode()


def csv_of(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(map(repr, row)) for row in rows.tolist()) + "\n").encode()


def as_list(data) -> list:
    """Decoded input as plain lists, NaN as None, so tables can compare it with ==."""
    array = data.to_numpy() if isinstance(data, pd.DataFrame) else data
    return [[None if np.isnan(v) else v for v in row] for row in array.tolist()]


def bad_request(data: bytes, content_type: str) -> str:
    with pytest.raises(BadRequest) as raised:
        decode(data, content_type)
    assert raised.value.status == 400
    assert len(raised.value.message) < 200 and "\n" not in raised.value.message
    return raised.value.message


# -- decoders: what each format decodes to -----------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    (json_of([SETOSA, VIRGINICA]), [SETOSA, VIRGINICA]),  # a list of rows
    (json_of(SETOSA), [SETOSA]),  # a single row
    (json_of([SETOSA]), [SETOSA]),
    (json_of({"instances": [SETOSA, VIRGINICA]}), [SETOSA, VIRGINICA]),
    (json_of({"instances": SETOSA}), [SETOSA]),
    (json_of({"inputs": [SETOSA, VIRGINICA]}), [SETOSA, VIRGINICA]),
    (json_of([{"features": SETOSA}, {"features": VIRGINICA}]), [SETOSA, VIRGINICA]),
    (json_of({"instances": [{"features": SETOSA}]}), [SETOSA]),
    (json_of({"features": SETOSA}), [SETOSA]),
    (json_of([{"features": SETOSA}, VIRGINICA]), [SETOSA, VIRGINICA]),  # both shapes of a row mixed
    (json_of([[1, None, 3]]), [[1, None, 3]]),  # null is a missing value
    (json_of([1, None]), [[1, None]]),
    (b"[[1, 2]]\n", [[1, 2]]),
    (json_of([[1e308, -0.0, 2]]), [[1e308, 0.0, 2]]),
    (json_of([[7], [8]]), [[7], [8]]),  # one feature
])
def test_json_rows_become_a_float64_matrix(body, expected):
    data = decode(body, "application/json")
    assert isinstance(data, np.ndarray) and data.dtype == np.float64 and data.ndim == 2
    assert as_list(data) == expected


@pytest.mark.parametrize(("body", "columns", "expected"), [
    (json_of({"columns": ["b", "a"], "data": [[1, 2], [3, 4]]}), ["b", "a"], [[1, 2], [3, 4]]),
    (json_of({"columns": ["a"], "data": [[None]]}), ["a"], [[None]]),
    (json_of({"instances": {"columns": ["a", "b"], "data": [[1, 2]]}}), ["a", "b"], [[1, 2]]),
    (json_of([{"a": 1.5, "b": 2}, {"a": 3, "b": None}]), ["a", "b"], [[1.5, 2], [3, None]]),
    (json_of([{"b": 1, "a": 2}]), ["b", "a"], [[1, 2]]),  # columns in first-seen order
    (json_of({"instances": [{"a": 1}]}), ["a"], [[1]]),
])
def test_named_json_becomes_a_float64_dataframe(body, columns, expected):
    data = decode(body, "application/json")
    assert isinstance(data, pd.DataFrame)
    assert list(data.columns) == columns
    assert (data.dtypes == np.float64).all()
    assert as_list(data) == expected


@pytest.mark.parametrize("content_type", ["application/jsonlines", "application/x-jsonlines",
                                          "application/jsonlines; charset=utf-8"])
@pytest.mark.parametrize(("body", "expected"), [
    (lines_of([SETOSA, VIRGINICA]), [SETOSA, VIRGINICA]),
    (lines_of([{"features": SETOSA}, {"features": VIRGINICA}]), [SETOSA, VIRGINICA]),
    (lines_of([SETOSA, {"features": VIRGINICA}]), [SETOSA, VIRGINICA]),
    (b"[1, 2]\r\n\r\n[3, null]", [[1, 2], [None, None], [3, None]]),  # CRLF, a blank line (a row), no final newline
    (b"[1, 2]\n\n", [[1, 2], [None, None]]),  # a blank line is a row of missing values; the final newline no row
    (lines_of([[7]]), [[7]]),
    (b"7\n8\n", [[7], [8]]),  # a scalar line is a row of one value
    (b"7\n\n8\n", [[7], [None], [8]]),
])
def test_json_lines_are_one_row_per_line(body, expected, content_type):
    data = decode(body, content_type)
    assert isinstance(data, np.ndarray) and data.dtype == np.float64
    assert as_list(data) == expected


def test_json_lines_of_records_become_a_dataframe():
    data = decode(lines_of([{"a": 1, "b": 2}, {"a": 3, "b": None}]), "application/jsonlines")
    assert isinstance(data, pd.DataFrame) and list(data.columns) == ["a", "b"]
    assert as_list(data) == [[1, 2], [3, None]]


@pytest.mark.parametrize(("array", "expected"), [
    (np.array(SETOSA), [SETOSA]),  # 1-D is one row
    (np.array([SETOSA, VIRGINICA]), [SETOSA, VIRGINICA]),
    (np.array([[1, 2], [3, 4]], dtype=np.int8), [[1, 2], [3, 4]]),
    (np.array([[1, 2]], dtype=np.uint64), [[1, 2]]),
    (np.array([[0.5, 2]], dtype=np.float32), [[0.5, 2]]),
    (np.array([[0.5, 2]], dtype=">f8"), [[0.5, 2]]),  # big-endian
    (np.asfortranarray([[1.0, 2.0], [3.0, 4.0]]), [[1, 2], [3, 4]]),
    (np.array([[np.nan, 1.0]]), [[None, 1]]),
])
def test_npy_arrays_become_a_float64_matrix(array, expected):
    data = decode(npy(array), "application/x-npy")
    assert isinstance(data, np.ndarray) and data.dtype == np.float64 and data.ndim == 2
    assert as_list(data) == expected


def test_npy_rows_keep_every_bit_of_their_values():
    rows = np.random.default_rng(3).normal(size=(20, 4))
    assert decode(npy(rows), "application/x-npy").tobytes() == rows.tobytes()


def test_json_charset_parameter_is_used_to_read_the_body():
    body = json.dumps([SETOSA]).encode("utf-16")
    assert as_list(decode(body, "application/json; charset=utf-16")) == [SETOSA]


def test_decoders_table_maps_every_supported_type():
    assert set(DECODERS) == {"text/csv", "application/json", "application/jsonlines",
                             "application/x-jsonlines", "application/x-npy", "application/x-parquet"}


# -- decoders: everything malformed is a short 400 ---------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    (b"[[1, 2]", "the JSON body is not valid JSON: Expecting ',' delimiter: line 1 column 8 (char 7)"),
    (b"", "the JSON body is not valid JSON: Expecting value: line 1 column 1 (char 0)"),
    (b"{'a': 1}", "the JSON body is not valid JSON: Expecting property name enclosed in double quotes: "
                  "line 1 column 2 (char 1)"),
    (b"[" * 100_000, "the JSON body is nested too deeply"),
    (b"[1, 2]\xff", "the body is not valid utf-8 text (byte 6)"),
    (b"[]", "the JSON body holds no rows"),
    (b'{"instances": []}', "the JSON body 'instances' holds no rows"),
    (b'{"columns": ["a"], "data": []}', "the JSON body 'data' holds no rows"),
    (b"5", "the JSON body is int; send a list of rows or an object with 'instances'"),
    (b'"5.1,3.5"', "the JSON body is the string '5.1,3.5'; send a list of rows or an object with 'instances'"),
    (b"true", "the JSON body is a boolean; send a list of rows or an object with 'instances'"),
    (b"null", "the JSON body is null; send a list of rows or an object with 'instances'"),
    (b'{"rows": [[1]]}', "the JSON body: an object needs 'instances', 'inputs', 'features', or 'columns' and 'data'"),
    (b"[[1, 2], [3]]", "the JSON body: row 2 has 1 values but row 1 has 2"),
    (b"[[1, 2], 3]", "the JSON body: row 2 is int, not a list of numbers"),
    (b"[[1, [2]]]", "the JSON body: row 1, column 2 is a list, not a number or text"),
    (b'[[1, {"a": 2}]]', "the JSON body: row 1, column 2 is an object, not a number or text"),
    (b"[" * 500 + b"1" + b"]" * 500, "the JSON body: row 1, column 1 is a list, not a number or text"),
    (b'[{"a": 1}, [1]]', "the JSON body: row 1 is an object, not a list of numbers"),
    (b'[{"a": true}]', "the JSON body: record 1, feature 'a' is a boolean, not a number or text"),
    (b'[{"a": [1]}]', "the JSON body: record 1, feature 'a' is a list, not a number or text"),
    (b'{"columns": "a", "data": [[1]]}', "the JSON body: 'columns' must be a list of feature names"),
    (b'{"columns": [1, 2], "data": [[1, 2]]}', "the JSON body: 'columns' must be a list of feature names"),
    (b'{"columns": ["a", "b"], "data": [[1, 2, 3]]}',
     "the JSON body: 'data' rows have 3 values but 'columns' names 2"),
])
def test_malformed_json_is_a_400_with_a_short_reason(body, message):
    assert bad_request(body, "application/json") == message


@pytest.mark.parametrize(("body", "message"), [
    (b"", "the body holds no JSON lines"),
    (b"\n \n", "the body holds only blank lines (2); send a row per line"),
    (b"[1, 2]\n[3,\n", "JSON line 2 is not valid JSON: Expecting value: line 1 column 4 (char 3)"),
    (b"[1, 2]\n\n[3,\n", "JSON line 3 is not valid JSON"),  # numbered as an editor numbers them
    (b"[" * 100_000, "JSON line 1 is nested too deeply"),
    (b"[1, 2]\n\xff\n", "the body is not valid utf-8 text (byte 7)"),
    (b"[1, 2]\n[3]\n", "the JSON lines: row 2 has 1 values but row 1 has 2"),
    (b"[1, 2]\n3\n", "the JSON lines: row 2 has 1 values but row 1 has 2"),  # a scalar line is a row of one
    (b"[[1, 2]]\n", "the JSON lines: row 1, column 1 is a list, not a number or text"),
    (b'{"a": 1}\n[1]\n', "the JSON lines: row 1 is an object, not a list of numbers"),
])
def test_malformed_json_lines_are_a_400_with_a_short_reason(body, message):
    assert bad_request(body, "application/jsonlines").startswith(message)


@pytest.mark.parametrize(("content_type", "body", "expected"), [
    ("application/json", b'[[1, "a"]]', [[1.0, "a"]]),
    ("application/json", b'["setosa", 1]', [["setosa", 1.0]]),
    ("application/json", b'[["5.1", "3.5"]]', [["5.1", "3.5"]]),
    ("application/json", b'[{"features": ["5.1", null]}]', [["5.1", None]]),
    ("application/json", b'{"instances": [["x", 3.5]]}', [["x", 3.5]]),
    ("application/json", b'{"columns": ["a", "b"], "data": [["5.1", 3.5]]}', [["5.1", 3.5]]),
    ("application/json", b'[{"a": "x", "b": 1}]', [["x", 1.0]]),
    ("application/jsonlines", b'[1, "a"]\n', [[1.0, "a"]]),
    ("application/jsonlines", b'{"a": 1}\n{"a": "x"}\n', [[1.0], ["x"]]),
])
def test_json_strings_are_kept_as_text_for_the_schema_to_judge(content_type, body, expected):
    data = decode(body, content_type)
    values = data.to_numpy() if isinstance(data, pd.DataFrame) else data
    assert values.dtype == object
    assert [[None if isinstance(v, float) and np.isnan(v) else v for v in row] for row in values.tolist()] == expected


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b"[[1, true]]"),
    ("application/json", b"[true, 1]"),
    ("application/json", b'{"instances": [[false, 1]]}'),
    ("application/jsonlines", b"[1, true]\n"),
])
def test_booleans_are_refused_when_decoded(content_type, body):
    assert "is a boolean, not a number or text" in bad_request(body, content_type)


@pytest.mark.parametrize(("content_type", "body"), [
    pytest.param("application/json", b"[[1, 2], [3, 1" + b"0" * 400 + b"]]", id="rows-fast-path"),
    pytest.param("application/json", b'[{"a": 1' + b"0" * 400 + b"}]", id="records"),
    pytest.param("application/jsonlines", b"[1" + b"0" * 400 + b", 2]\n", id="lines"),
])
def test_a_number_too_large_for_a_float_is_a_400(content_type, body):
    assert "too large" in bad_request(body, content_type)


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b"[[]]"),
    ("application/json", b'{"instances": [[]]}'),
    ("application/json", b'[{"features": []}]'),
    ("application/jsonlines", b"[]\n"),
])
def test_a_row_without_values_is_a_400(content_type, body):
    bad_request(body, content_type)


@pytest.mark.parametrize(("body", "message"), [
    (npy(np.array([[1, "a"]], dtype=object)), "the .npy body holds Python objects; send an array of numbers"),
    (npy(np.array([None])), "the .npy body holds Python objects; send an array of numbers"),
    (npy(np.array(["5.1", "3.5"])), "the .npy array holds <U3 values; send numbers"),
    (npy(np.array([b"5.1"])), "the .npy array holds |S3 values; send numbers"),
    (npy(np.array([1 + 2j])), "the .npy array holds complex128 values; send numbers"),
    (npy(np.zeros((2, 2, 2))), "the .npy array has shape (2, 2, 2); send one row or a 2-D array of rows"),
    (npy(np.float64(1.5)), "the .npy array has shape (); send one row or a 2-D array of rows"),
    (npy(np.zeros((0, 4))), "the .npy array has shape (0, 4); send one row or a 2-D array of rows"),
    (npy(np.zeros((2, 0))), "the .npy array has shape (2, 0); send one row or a 2-D array of rows"),
    (npy(np.zeros((2, 4)))[:-8], "the body is not a valid .npy array: its header says shape (2, 4)"),
    (npy_header_only((1000, 4)), "the body is not a valid .npy array: its header says shape (1000, 4)"),
    (b"", "the body is not a .npy array"),
    (b"garbage bytes, not an array", "the body is not a .npy array"),
])
def test_malformed_npy_is_a_400_with_a_short_reason(body, message):
    assert bad_request(body, "application/x-npy").startswith(message)


def test_npy_object_arrays_are_never_unpickled(monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("the body was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    assert bad_request(npy(np.array([{"x": 1}])), "application/x-npy") == (
        "the .npy body holds Python objects; send an array of numbers")


def test_an_npz_archive_is_not_an_npy_array():
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((1, 4)))
    assert bad_request(buffer.getvalue(), "application/x-npy") == "the body is not a .npy array"


def test_a_body_that_looks_like_a_zip_but_is_not_is_a_400():
    assert bad_request(b"PK\x03\x04" + b"x" * 40, "application/x-npy").startswith("the body is not")


def test_an_npy_header_claiming_a_huge_shape_is_a_400():
    assert bad_request(npy_header_only((2**50,)), "application/x-npy").startswith(
        "the body is not a valid .npy array")


def test_garbage_bytes_are_reported_as_not_an_npy_array():
    assert bad_request(b"garbage bytes, not an array", "application/x-npy") == "the body is not a .npy array"


# -- encoders --------------------------------------------------------------------------------

LABELS = np.array(["setosa", "virginica", "setosa"])
IRIS_PROBABILITIES = Probabilities(np.array([[0.9, 0.1, 0.0], [0.0, 0.25, 0.75]]), CLASSES)


@pytest.mark.parametrize(("prediction", "accept", "expected"), [
    (LABELS, "text/csv", b"setosa\nvirginica\nsetosa\n"),
    (LABELS, "application/json", b'{"predictions": ["setosa", "virginica", "setosa"]}'),
    (LABELS, "application/jsonlines", b'"setosa"\n"virginica"\n"setosa"\n'),
    (np.array([0, 2]), "application/json", b'{"predictions": [0, 2]}'),
    (np.array([0.5, 1.25]), "application/jsonlines", b"0.5\n1.25\n"),
    (np.array([True, False]), "application/json", b'{"predictions": [true, false]}'),
    (np.array([[1, 2], [3, 4]]), "application/json", b'{"predictions": [[1, 2], [3, 4]]}'),
    (np.array([[1, 2], [3, 4]]), "application/jsonlines", b"[1, 2]\n[3, 4]\n"),
    (np.float64(0.75), "application/json", b'{"predictions": [0.75]}'),  # a single value is one row
    (["a,b", 'say "hi"'], "application/json", b'{"predictions": ["a,b", "say \\"hi\\""]}'),
    (IRIS_PROBABILITIES, "text/csv", b"0.9,0.1,0.0\n0.0,0.25,0.75\n"),
    (IRIS_PROBABILITIES, "application/json",
     b'{"predictions": [{"setosa": 0.9, "versicolor": 0.1, "virginica": 0.0}, '
     b'{"setosa": 0.0, "versicolor": 0.25, "virginica": 0.75}]}'),
    (IRIS_PROBABILITIES, "application/jsonlines",
     b'{"setosa": 0.9, "versicolor": 0.1, "virginica": 0.0}\n'
     b'{"setosa": 0.0, "versicolor": 0.25, "virginica": 0.75}\n'),
    (Probabilities(np.array([[0.2, 0.8]]), (0, 1)), "application/json", b'{"predictions": [{"0": 0.2, "1": 0.8}]}'),
    (Probabilities(np.array([[0.2, 0.8]]), ("b", "a")), "application/jsonlines", b'{"b": 0.2, "a": 0.8}\n'),
    (Probabilities(np.array([[0.2, 0.8]]), ("b", "a")), "text/csv", b"0.2,0.8\n"),  # class order, not sorted
])
def test_predictions_are_encoded_in_the_negotiated_type(prediction, accept, expected):
    assert encode(prediction, accept) == expected


def read_back(body: bytes, accept: str) -> list:
    text = body.decode()
    if accept == "text/csv":
        return list(csv.reader(io.StringIO(text, newline="")))
    if accept == "application/json":
        return json.loads(text)["predictions"]
    assert text.endswith("\n")
    return [json.loads(line) for line in text.split("\n")[:-1]]


TRICKY_LABELS = np.array(["setosa", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "\u00fcn\u00efcode", " spaced "])


@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_output_has_one_row_per_input_row_in_input_order(accept):
    rng = np.random.default_rng(11)
    for _ in range(50):
        n = int(rng.integers(1, 51))
        labels = TRICKY_LABELS[rng.integers(0, len(TRICKY_LABELS), size=n)]
        rows = read_back(encode(labels, accept), accept)
        assert [row[0] if accept == "text/csv" else row for row in rows] == labels.tolist()

        values = rng.dirichlet(np.ones(3), size=n)
        rows = read_back(encode(Probabilities(values, CLASSES), accept), accept)
        if accept == "text/csv":
            assert np.array(rows, dtype=np.float64).tolist() == values.tolist()
        else:
            assert rows == [dict(zip(CLASSES, row, strict=True)) for row in values.tolist()]


@pytest.mark.parametrize("prediction", [
    np.random.default_rng(5).normal(size=37),  # regression values
    np.random.default_rng(6).dirichlet(np.ones(3), size=37),  # probabilities as a plain array
    Probabilities(np.random.default_rng(7).dirichlet(np.ones(3), size=37), CLASSES),
])
def test_numeric_csv_output_is_valid_csv_input_to_the_next_container(prediction):
    values = prediction.values if isinstance(prediction, Probabilities) else prediction
    decoded = decode(encode(prediction, "text/csv"), "text/csv")
    assert decoded.tolist() == values.reshape(len(values), -1).tolist()


# -- the model schema --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def models(iris, iris_model, iris_pipeline) -> dict:
    features, labels = iris
    codes = pd.Series(labels).map({"virginica": 2, "setosa": 0, "versicolor": 1}).to_numpy()
    return {
        "tree": iris_model,
        "pipeline with names": iris_pipeline,
        "logistic regression": LogisticRegression(max_iter=1000).fit(features, labels),
        "linear svc": LinearSVC().fit(features, labels),
        "svc without probability": SVC().fit(features, labels),
        "pipeline ending in linear svc": make_pipeline(StandardScaler(), LinearSVC()).fit(features, labels),
        "ridge": Ridge().fit(features, codes),
        "tree on integer labels": DecisionTreeClassifier(random_state=0).fit(features, codes),
        "not scikit-learn": object(),
    }


HEADERLESS = [f"column_{j + 2}" for j in range(4)]  # headerless CSV: the target is column 1


def numeric(names, accepts_missing: bool, frame: bool = False) -> InputContract:
    """A measured contract of numeric columns that refuses infinity."""
    return InputContract(tuple(Column(n, False, accepts_missing) for n in names), frame=frame,
                         accepts_infinite=False, measured=True)


@pytest.mark.parametrize(("name", "expected"), [
    ("tree", numeric(HEADERLESS, True)),
    ("pipeline with names", numeric(NAMES, False, frame=True)),
    ("logistic regression", numeric(HEADERLESS, False)),
    ("ridge", numeric(HEADERLESS, False)),
    ("tree on integer labels", numeric(HEADERLESS, True)),
    ("not scikit-learn", UNKNOWN),  # no predict, no feature count: requests go to it as decoded
])
def test_the_contract_of_a_loaded_model_is_measured_by_calling_it(models, name, expected):
    assert measure_loaded(models[name]) == expected


@pytest.fixture(scope="module")
def named() -> InputContract:
    return numeric(NAMES, False, frame=True)


@pytest.fixture(scope="module")
def unnamed() -> InputContract:
    return numeric(HEADERLESS, True)


def frame(columns, rows=((1.0, 2.0, 3.0, 4.0),)) -> pd.DataFrame:
    return pd.DataFrame(np.array(rows, dtype=np.float64).reshape(len(rows), -1), columns=list(columns))


def test_conform_reorders_named_columns_to_the_models_order(named):
    data = conform(frame(NAMES[::-1]), named)
    assert list(data.columns) == NAMES
    assert data.to_numpy().tolist() == [[4.0, 3.0, 2.0, 1.0]]


def test_conform_names_the_columns_of_an_array_for_a_model_with_feature_names(named):
    rows = np.array([SETOSA, VIRGINICA])
    data = conform(rows, named)
    assert isinstance(data, pd.DataFrame) and list(data.columns) == NAMES
    assert data.to_numpy().tolist() == rows.tolist()


@pytest.mark.parametrize(("contract", "data", "message"), [
    ("unnamed", np.zeros((2, 5)), "row 1 has 5 values; the model takes 4"),
    ("unnamed", np.zeros((1, 3)), "row 1 has 3 values; the model takes 4"),
    ("named", np.zeros((2, 5)), "row 1 has 5 values; the model takes 4"),
    ("named", frame(NAMES[:3], [(1, 2, 3)]),
     "feature names do not match the model's (missing 'petal_width')"),
    ("named", frame([*NAMES, "colour"], [(1, 2, 3, 4, 5)]),
     "feature names do not match the model's (unknown 'colour')"),
    ("named", frame([*NAMES, "sepal_length"], [(1, 2, 3, 4, 9)]),
     "feature 'sepal_length' is named more than once"),  # never one of them picked, values shifted
    ("named", frame([*NAMES[:2], "petal", "colour"]),
     "feature names do not match the model's (missing 'petal_length', 'petal_width'; unknown 'petal', 'colour')"),
    ("unnamed", frame(NAMES), "feature names do not match the model's (missing 'column_2', 'column_3', "
                              "'column_4', 'column_5'; unknown 'sepal_length', 'sepal_width', 'petal_length', "
                              "'petal_width')"),  # a headerless model's columns are named by CSV position
    ("named", np.array([[1.0, np.nan, 3.0, 4.0]]),
     "row 1, column 2 (sepal_width) is missing; this model needs a value there"),
    ("unnamed", np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, -np.inf]]),
     "row 2, column 4 is infinite or too large; send finite numbers"),  # also from a custom input_fn
    ("named", np.array([[np.nan, np.inf, 3.0, 4.0]]),
     "row 1, column 2 (sepal_width) is infinite or too large; send finite numbers"),
    ("named", frame(NAMES[::-1], [(1, 2, 3, 4), (5, 6, np.nan, 8)]),
     "row 2, column 2 (sepal_width) is missing; this model needs a value there"),  # in the model's column order
])
def test_conform_refuses_input_that_does_not_fit_the_model(request, contract, data, message):
    with pytest.raises(BadRequest) as raised:
        conform(data, request.getfixturevalue(contract))
    assert raised.value.message == message


@pytest.mark.parametrize(("content_type", "body", "message"), [
    ("application/json", b'[[1, "a", 3, 4]]', "row 1, column 2: 'a' is not a number"),
    ("application/json", b'["setosa", 1, 2, 3]', "row 1, column 1: 'setosa' is not a number"),
    ("application/jsonlines", b'[1, 2, 3, 4]\n[1, 2, "x", 4]\n', "row 2, column 3: 'x' is not a number"),
    ("application/json", b"[[1, 1e999, 3, 4]]", "row 1, column 2 is infinite or too large; send finite numbers"),
    ("application/json", b"[1, 2, 3, -1e999]", "row 1, column 4 is infinite or too large; send finite numbers"),
    ("application/json", b"[[1, 2, 3, 4], [Infinity, 2, 3, 4]]",
     "row 2, column 1 is infinite or too large; send finite numbers"),
    ("application/json", b"[[1, 2, 3, 4], [3, 1" + b"0" * 400 + b".0, 3, 4]]",  # a float literal past 1e308
     "row 2, column 2 is infinite or too large; send finite numbers"),
    ("application/jsonlines", b"[1, 2, 3, 4]\n[1e999, 2, 3, 4]\n",
     "row 2, column 1 is infinite or too large; send finite numbers"),
    ("application/x-npy", npy(np.array([[1.0, np.inf, 3.0, 4.0]])),
     "row 1, column 2 is infinite or too large; send finite numbers"),
])
def test_text_or_infinity_is_a_400_when_conformed_to_a_numeric_model(content_type, body, message):
    data = decode(body, content_type)
    with pytest.raises(BadRequest) as raised:
        conform(data, numeric(HEADERLESS, True))
    assert raised.value.message == message


@pytest.mark.parametrize(("contract", "body", "message"), [
    ("named", b'[{"sepal_length": 1, "sepal_width": "x", "petal_length": 3, "petal_width": 4}]',
     "row 1, column 2 (sepal_width): 'x' is not a number"),
    ("named", b'[{"petal_width": 1e999, "petal_length": 3, "sepal_width": 2, "sepal_length": 1}]',
     "row 1, column 4 (petal_width) is infinite or too large; send finite numbers"),  # in the model's order
    ("named", json_of({"columns": NAMES, "data": [[1, 2, 3, 4]]}).replace(b"[[1,", b"[[1e999,"),
     "row 1, column 1 (sepal_length) is infinite or too large; send finite numbers"),
])
def test_named_text_or_infinity_is_a_400_naming_the_models_column(request, contract, body, message):
    with pytest.raises(BadRequest) as raised:
        conform(decode(body, "application/json"), request.getfixturevalue(contract))
    assert raised.value.message == message


def test_a_string_holding_a_number_is_read_as_that_number_in_a_numeric_column(unnamed):
    data = conform(decode(b'[["5.1", "3.5", 1.4, "0.2"]]', "application/json"), unnamed)
    assert data.dtype == np.float64 and data.tolist() == [SETOSA]


@pytest.mark.parametrize(("name", "allowed"), [("tree", True), ("logistic regression", False),
                                                ("pipeline with names", False)])
def test_missing_values_pass_only_to_a_model_measured_to_take_them(models, name, allowed):
    contract = measure_loaded(models[name])
    rows = np.array([[5.1, np.nan, 1.4, 0.2]])
    if allowed:
        assert as_list(conform(rows, contract)) == [[5.1, None, 1.4, 0.2]]
    else:
        missing = r"row 1, column 2( \(sepal_width\))? is missing; this model needs a value there"
        with pytest.raises(BadRequest, match=missing):
            conform(rows, contract)


# -- custom attributes and probabilities --------------------------------------------------------

@pytest.mark.parametrize(("header", "expected"), [
    (None, {}),
    ("", {}),
    ("output=probabilities", {"output": "probabilities"}),
    ("a=1, output=probabilities", {"a": "1", "output": "probabilities"}),
    ("a=1;output=probabilities", {"a": "1", "output": "probabilities"}),
    ("  Output = probabilities ;", {"output": "probabilities"}),
    ("trace-id-1234", {}),  # not a key=value pair: ignored
    ("token=a=b", {"token": "a=b"}),
])
def test_custom_attributes_are_key_value_pairs(header, expected):
    assert custom_attributes(header) == expected


@pytest.mark.parametrize(("header", "default", "expected"), [
    (None, "predictions", "predictions"),
    (None, "probabilities", "probabilities"),
    ("output=probabilities", "predictions", "probabilities"),
    ("output=PROBABILITIES", "predictions", "probabilities"),
    ("a=1; output=predictions", "probabilities", "predictions"),
    ("a=1", "probabilities", "probabilities"),
])
def test_requested_output_comes_from_the_header_or_the_default(header, default, expected):
    assert requested_output(custom_attributes(header), default) == expected


@pytest.mark.parametrize("header", ["output=labels", "output=proba", "a=1, output=probability"])
def test_an_unknown_output_is_a_400(header):
    with pytest.raises(BadRequest) as raised:
        requested_output(custom_attributes(header), "predictions")
    value = custom_attributes(header)["output"]
    assert raised.value.message == (
        f"custom attribute output={value!r}: use output=predictions or output=probabilities")


@pytest.mark.parametrize("name", ["tree", "pipeline with names", "logistic regression", "tree on integer labels"])
def test_probabilities_are_predict_proba_with_classes_in_model_order(models, iris, name):
    model = models[name]
    rows = iris[0][::10]
    data = pd.DataFrame(rows, columns=NAMES) if name == "pipeline with names" else rows
    result = probabilities(model, data)
    assert result.classes == tuple(model.classes_.tolist())
    np.testing.assert_array_equal(result.values, model.predict_proba(data))


def test_probabilities_of_a_model_without_classes_are_numbered():
    class Scorer:
        def predict_proba(self, data):
            return np.array([[0.25, 0.75]])

    result = probabilities(Scorer(), np.zeros((1, 2)))
    assert result.classes == (0, 1)


@pytest.mark.parametrize(("name", "kind"), [
    ("linear svc", "LinearSVC"),
    ("ridge", "Ridge"),
    ("svc without probability", "SVC"),
    ("pipeline ending in linear svc", "Pipeline"),
])
def test_a_model_without_predict_proba_cannot_give_probabilities(models, iris, name, kind):
    with pytest.raises(BadRequest) as raised:
        probabilities(models[name], iris[0][:2])
    assert raised.value.message == f"this model ({kind}) cannot give probabilities; ask for predictions instead"


def test_a_model_of_several_targets_refuses_probabilities_instead_of_answering_a_table_per_target():
    # Two rows and two targets: a table per target would count as one answer per row.
    rows = np.random.default_rng(0).normal(size=(40, 3))
    model = DecisionTreeClassifier(random_state=0).fit(rows, np.column_stack([rows[:, 0] > 0, rows[:, 1] > 0]))
    with pytest.raises(BadRequest) as raised:
        probabilities(model, rows[:2])
    assert raised.value.message == ("this model (DecisionTreeClassifier) has 2 targets, and its probabilities are "
                                    "one table per target; ask for predictions instead")


# -- the Flask app, with the hooks of algo/predictor.py -----------------------------------------

@pytest.fixture
def rows(iris) -> np.ndarray:
    """Iris rows of every class in a mixed order."""
    features, _ = iris
    return features[np.random.default_rng(8).permutation(len(features))[:30]]


def post(client, body: bytes, content_type: str = "text/csv", **headers):
    return client.post("/invocations", data=body, content_type=content_type, headers=headers)


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/csv", csv_of(np.array([SETOSA, VIRGINICA]))),
    ("application/json", json_of([SETOSA, VIRGINICA])),
    ("application/json", json_of({"instances": [SETOSA, VIRGINICA]})),
    ("application/json", json_of({"inputs": [{"features": SETOSA}, {"features": VIRGINICA}]})),
    ("application/json; charset=utf-8", json_of([SETOSA, VIRGINICA])),
    ("application/jsonlines", lines_of([SETOSA, VIRGINICA])),
    ("application/x-jsonlines", lines_of([{"features": SETOSA}, VIRGINICA])),
    ("application/x-npy", npy([SETOSA, VIRGINICA])),
])
def test_every_input_format_is_served(serve_model, iris_model, content_type, body):
    response = post(serve_model(iris_model), body, content_type)
    assert response.status_code == 200, response.data
    assert response.get_data(as_text=True).splitlines() == iris_model.predict(np.array([SETOSA, VIRGINICA])).tolist()


def test_a_single_json_row_is_served(serve_model, iris_model):
    response = post(serve_model(iris_model), json_of(SETOSA), "application/json")
    assert response.get_data(as_text=True).splitlines() == iris_model.predict(np.array([SETOSA])).tolist()


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", json_of({"columns": NAMES[::-1], "data": [SETOSA[::-1], VIRGINICA[::-1]]})),
    ("application/json", json_of([dict(zip(NAMES, SETOSA, strict=True)), dict(zip(NAMES, VIRGINICA, strict=True))])),
    ("application/jsonlines", lines_of([dict(zip(NAMES[::-1], SETOSA[::-1], strict=True)),
                                        dict(zip(NAMES, VIRGINICA, strict=True))])),
])
def test_named_features_are_served_in_any_column_order(serve_model, iris_pipeline, content_type, body):
    response = post(serve_model(iris_pipeline), body, content_type)
    assert response.status_code == 200, response.data
    expected = iris_pipeline.predict(pd.DataFrame([SETOSA, VIRGINICA], columns=NAMES))
    assert response.get_data(as_text=True).splitlines() == expected.tolist()


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/csv", b"5.1,3.5,1.4,0.2\n\n6.7,3.0,5.2,2.3\n"),
    ("text/csv", b"5.1,3.5,1.4,0.2\n,,,\n6.7,3.0,5.2,2.3\n"),
    ("application/jsonlines", b"[5.1, 3.5, 1.4, 0.2]\n\n[6.7, 3.0, 5.2, 2.3]\n"),
])
def test_a_blank_line_is_a_row_of_missing_values_answered_in_its_place(serve_model, iris_model, content_type, body):
    response = post(serve_model(iris_model), body, content_type)
    assert response.status_code == 200, response.data
    expected = iris_model.predict(np.array([SETOSA, [np.nan] * 4, VIRGINICA]))
    assert response.get_data(as_text=True).splitlines() == expected.tolist()


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/csv", b"5.1,3.5,1.4,0.2\n\n"),
    ("application/jsonlines", b"[5.1, 3.5, 1.4, 0.2]\n\n"),
])
def test_a_blank_line_is_a_400_naming_its_row_for_a_model_that_needs_values(serve_model, iris_pipeline,
                                                                           content_type, body):
    response = post(serve_model(iris_pipeline), body, content_type)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == (
        "row 2, column 1 (sepal_length) is missing; this model needs a value there\n")


@pytest.mark.parametrize(("model", "content_type", "body", "message"), [
    ("iris_model", "application/json", json_of({"columns": NAMES[:1], "data": [SETOSA[:1]]}),
     "feature names do not match the model's (missing 'column_2', 'column_3', 'column_4', 'column_5'; "
     "unknown 'sepal_length')\n"),
    ("iris_pipeline", "application/json", json_of([{"sepal_length": 5.1}]),
     "feature names do not match the model's (missing 'sepal_width', 'petal_length', 'petal_width')\n"),
    ("iris_pipeline", "application/json", json_of([[5.1, None, 1.4, 0.2]]),
     "row 1, column 2 (sepal_width) is missing; this model needs a value there\n"),
    ("iris_model", "application/x-npy", npy([1.0, 2.0]), "row 1 has 2 values; the model takes 4\n"),
    ("iris_model", "application/json", b"[[1, 2, 3, 4]", "the JSON body is not valid JSON: "
                                                          "Expecting ',' delimiter: line 1 column 14 (char 13)\n"),
    ("iris_model", "application/x-npy", npy(np.array([SETOSA], dtype=object)),
     "the .npy body holds Python objects; send an array of numbers\n"),
])
def test_input_that_does_not_fit_the_model_is_a_400(request, serve_model, model, content_type, body, message):
    response = post(serve_model(request.getfixturevalue(model)), body, content_type)
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == message


def test_missing_values_reach_a_model_that_allows_them(serve_model, iris_model):
    response = post(serve_model(iris_model), json_of([[5.1, None, 1.4, 0.2]]), "application/json")
    assert response.status_code == 200
    assert response.data == iris_model.predict([[5.1, np.nan, 1.4, 0.2]])[0].encode() + b"\n"


def test_json_accept_returns_predictions_equal_to_model_predict(serve_model, iris_model, rows):
    response = post(serve_model(iris_model), csv_of(rows), Accept="application/json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.data) == {"predictions": iris_model.predict(rows).tolist()}


def test_jsonlines_accept_returns_one_prediction_per_line(serve_model, iris_model, rows):
    response = post(serve_model(iris_model), npy(rows), "application/x-npy", Accept="application/jsonlines")
    assert response.headers["Content-Type"] == "application/jsonlines"
    lines = response.get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == iris_model.predict(rows).tolist()


@pytest.mark.parametrize(("model", "as_input"), [
    ("iris_model", lambda rows: rows),
    ("iris_pipeline", lambda rows: pd.DataFrame(rows, columns=NAMES)),
])
@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_probabilities_header_returns_predict_proba(request, serve_model, rows, model, as_input, accept):
    model = request.getfixturevalue(model)
    response = post(serve_model(model), csv_of(rows), Accept=accept, **PROBABILITIES_HEADER)
    assert response.status_code == 200, response.data
    assert response.headers["Content-Type"] == accept
    expected = model.predict_proba(as_input(rows))
    answer = read_back(response.data, accept)
    if accept == "text/csv":
        values = np.array(answer, dtype=np.float64)
    else:
        assert all(list(row) == list(CLASSES) for row in answer)  # keys in the model's class order
        values = np.array([[row[c] for c in CLASSES] for row in answer])
    assert values.tolist() == expected.tolist()
    np.testing.assert_allclose(values.sum(axis=1), 1.0)


def test_configured_probabilities_are_the_default_output(serve_model, iris_model, rows):
    client = serve_model(iris_model, inference_output="probabilities")
    default = post(client, csv_of(rows))
    assert np.array(read_back(default.data, "text/csv"), dtype=float).tolist() == \
        iris_model.predict_proba(rows).tolist()
    labels = post(client, csv_of(rows), **{"X-Amzn-SageMaker-Custom-Attributes": "output=predictions"})
    assert labels.get_data(as_text=True).splitlines() == iris_model.predict(rows).tolist()


def test_predictions_are_the_default_output(serve_model, iris_model, rows):
    response = post(serve_model(iris_model), csv_of(rows), **{"X-Amzn-SageMaker-Custom-Attributes": "a=1"})
    assert response.get_data(as_text=True).splitlines() == iris_model.predict(rows).tolist()


@pytest.mark.parametrize(("name", "kind"), [("linear svc", "LinearSVC"), ("ridge", "Ridge")])
def test_probabilities_from_a_model_without_predict_proba_are_a_400(serve_model, models, name, kind):
    response = post(serve_model(models[name]), b"5.1,3.5,1.4,0.2\n", **PROBABILITIES_HEADER)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == (
        f"this model ({kind}) cannot give probabilities; ask for predictions instead\n")
    assert post(serve_model(models[name]), b"5.1,3.5,1.4,0.2\n").status_code == 200


def test_an_unknown_output_attribute_is_a_400(serve_model, iris_model):
    response = post(serve_model(iris_model), b"5.1,3.5,1.4,0.2\n",
                    **{"X-Amzn-SageMaker-Custom-Attributes": "output=labels"})
    assert response.status_code == 400
    assert response.get_data(as_text=True) == (
        "custom attribute output='labels': use output=predictions or output=probabilities\n")


@pytest.mark.parametrize(("content_type", "body"), [
    pytest.param("application/json", b"[[1" + b"0" * 400 + b", 2, 3, 4]]", id="huge-json-integer"),
    pytest.param("application/x-npy", b"PK\x03\x04" + b"x" * 40, id="zip-magic"),
    pytest.param("application/x-npy", npy_header_only((2**50,)), id="npy-huge-shape"),
])
def test_a_malformed_body_is_never_a_500(serve_model, iris_model, content_type, body):
    response = post(serve_model(iris_model), body, content_type)
    assert response.status_code == 400


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/json", "application/json"),
    ("application/jsonlines", "application/jsonlines"),
    ("text/csv;q=0.5, application/json", "application/json"),
    ("application/json;q=0.2, application/jsonlines;q=0.8, text/csv;q=0.5", "application/jsonlines"),
    ("application/xml, application/json;q=0.1", "application/json"),
    ("application/*", "application/json"),
    ("*/*;q=0.1, application/jsonlines", "application/jsonlines"),
    ("application/json;q=0.3, text/*;q=0.3", "application/json"),  # a tie goes to the range named first
    ("text/csv;q=0, */*", "application/json"),
])
def test_accept_with_q_values_picks_the_best_offered_type(serve_model, iris_model, accept, expected):
    response = post(serve_model(iris_model), b"5.1,3.5,1.4,0.2\n", Accept=accept)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == expected
    assert read_back(response.data, expected) in ([["setosa"]], ["setosa"])


@pytest.mark.parametrize("default_accept", ["text/csv", "application/json", "application/jsonlines"])
@pytest.mark.parametrize("accept", [None, "", "*/*", "*/*;q=0.5"])
def test_missing_or_wildcard_accept_uses_the_configured_default(serve_model, iris_model, default_accept, accept):
    client = serve_model(iris_model, default_accept=default_accept)
    headers = {} if accept is None else {"Accept": accept}
    response = post(client, b"5.1,3.5,1.4,0.2\n", **headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == default_accept


@pytest.mark.parametrize(("body", "headers", "status", "content_type"), [
    (b"5.1,3.5,1.4,0.2\n", {}, 200, "text/csv"),
    (b"5.1,3.5,1.4,0.2\n", {"Accept": "application/json"}, 200, "application/json"),
    (b"5.1,3.5,1.4,0.2\n", {"Accept": "application/jsonlines"}, 200, "application/jsonlines"),
    (b"5.1,3.5,1.4,0.2\n", PROBABILITIES_HEADER, 200, "text/csv"),
    (b"5.1,3.5,1.4,0.2\n", {"Accept": "application/xml"}, 406, "text/plain; charset=utf-8"),
    (b"5.1,x\n", {"Accept": "application/json"}, 400, "text/plain; charset=utf-8"),
])
def test_every_response_has_a_content_type(serve_model, iris_model, body, headers, status, content_type):
    response = post(serve_model(iris_model), body, **headers)
    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type


# -- property: every input format predicts what the model predicts ------------------------------

SEED = 200
BATCHES = 200
IRIS_LOW, IRIS_HIGH = np.array([4.0, 2.0, 1.0, 0.1]), np.array([8.0, 4.5, 7.0, 2.5])


def random_batches() -> list[np.ndarray]:
    """Batches of 1..50 iris-scale rows; every other batch rounded to one decimal, as iris is measured."""
    rng = np.random.default_rng(SEED)
    batches = []
    for i in range(BATCHES):
        batch = rng.uniform(IRIS_LOW, IRIS_HIGH, size=(int(rng.integers(1, 51)), 4))
        batches.append(batch.round(1) if i % 2 else batch)
    return batches


FORMATS = {
    "csv": ("text/csv", csv_of),
    "json list": ("application/json", lambda rows: json_of(rows.tolist())),
    "json instances": ("application/json", lambda rows: json_of({"instances": rows.tolist()})),
    "json inputs of features": ("application/json",
                                lambda rows: json_of({"inputs": [{"features": r} for r in rows.tolist()]})),
    "json lines": ("application/jsonlines", lambda rows: lines_of(rows.tolist())),
    "x-json lines of features": ("application/x-jsonlines",
                                 lambda rows: lines_of({"features": r} for r in rows.tolist())),
    "npy": ("application/x-npy", npy),
}
NAMED_FORMATS = {
    "json split": ("application/json", lambda rows: json_of({"columns": NAMES, "data": rows.tolist()})),
    "json split, columns reversed": (
        "application/json", lambda rows: json_of({"columns": NAMES[::-1], "data": rows[:, ::-1].tolist()})),
    "json records": ("application/json", lambda rows: json_of(
        [dict(zip(NAMES, r, strict=True)) for r in rows.tolist()])),
    "json lines of records": ("application/jsonlines", lambda rows: lines_of(
        dict(zip(NAMES, r, strict=True)) for r in rows.tolist())),
    "parquet": ("application/x-parquet", lambda rows: parquet_of(pd.DataFrame(rows, columns=NAMES))),
    "parquet, columns reversed": ("application/x-parquet",
                                  lambda rows: parquet_of(pd.DataFrame(rows[:, ::-1], columns=NAMES[::-1]))),
}
CASES = [("iris_model", name) for name in FORMATS] + \
        [("iris_pipeline", name) for name in {**FORMATS, **NAMED_FORMATS}]


@pytest.mark.parametrize(("model", "format_name"), CASES)
def test_random_rows_predict_the_same_through_every_input_format(request, serve_model, model, format_name):
    model_name, model = model, request.getfixturevalue(model)
    content_type, body_of = {**FORMATS, **NAMED_FORMATS}[format_name]
    client = serve_model(model)
    for batch in random_batches():
        data = pd.DataFrame(batch, columns=NAMES) if model_name == "iris_pipeline" else batch
        response = post(client, body_of(batch), content_type, Accept="application/json")
        assert response.status_code == 200, response.data
        assert json.loads(response.data)["predictions"] == model.predict(data).tolist(), batch
