"""Parquet request bodies (`application/x-parquet`): a row per row, columns as named features.

Tables first (what each column type decodes to, what is refused and how), then the Flask app with
the hooks of algo/predictor.py: a Parquet body answers what the model predicts on the same rows,
for a numeric model and for one with a text column.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from sagemaker_byo.contract import Column, InputContract, conform
from sagemaker_byo.errors import BadRequest, PayloadTooLarge
from sagemaker_byo.serving.decoders import DECODERS, decode, decode_parquet
from support import IRIS_FEATURES

PARQUET = "application/x-parquet"
NAMES = list(IRIS_FEATURES)
NAN = np.nan


def parquet_of(table: pa.Table | pd.DataFrame, **options) -> bytes:
    if isinstance(table, pd.DataFrame):
        table = pa.Table.from_pandas(table)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


def cells(frame: pd.DataFrame) -> list[list]:
    """Decoded cells as plain values, NaN as None, so tables can compare them with ==."""
    rows = frame.astype(object).to_numpy().tolist()
    return [[None if isinstance(v, float) and v != v else v for v in row] for row in rows]


def test_the_decoders_table_maps_parquet_to_decode_parquet():
    assert DECODERS[PARQUET] is decode_parquet


@pytest.mark.parametrize(("column", "expected"), [
    (pa.array([1.5, -2.25, None]), [1.5, -2.25, None]),
    (pa.array([1, None, 3], pa.int64()), [1.0, None, 3.0]),  # a nullable integer: null is missing
    (pa.array([1, 2, 3], pa.int8()), [1.0, 2.0, 3.0]),
    (pa.array([2**64 - 1, 0, 7], pa.uint64()), [float(2**64 - 1), 0.0, 7.0]),  # as float() rounds it
    (pa.array(np.array([0.5, 2, 3], np.float16)), [0.5, 2.0, 3.0]),
    (pa.array([1, 2, None], pa.decimal128(5, 2)), [1.0, 2.0, None]),
    (pa.array([True, False, None]), [1.0, 0.0, None]),  # booleans are 1 and 0
    (pa.nulls(3), [None, None, None]),  # a column of nothing but nulls
])
def test_number_columns_become_float64_with_nulls_missing(column, expected):
    frame = decode(parquet_of(pa.table({"x": column})), PARQUET)
    assert frame["x"].dtype == np.float64
    assert cells(frame) == [[v] for v in expected]


@pytest.mark.parametrize(("column", "expected"), [
    (pa.array(["red", None, "007"]), ["red", None, "007"]),  # text stays text: "007" is not 7
    (pa.array(["red", None, " teal"], pa.large_string()), ["red", None, " teal"]),
    (pa.array(["red", "blue", None]).dictionary_encode(), ["red", "blue", None]),  # a category
])
def test_text_and_category_columns_stay_text_with_nulls_missing(column, expected):
    frame = decode(parquet_of(pa.table({"x": column})), PARQUET)
    assert cells(frame) == [[v] for v in expected]


def test_a_pandas_categorical_is_text():
    body = parquet_of(pd.DataFrame({"size": pd.Categorical(["S", None, "XL"])}))
    assert cells(decode(body, PARQUET)) == [["S"], [None], ["XL"]]


def test_columns_are_named_features_in_the_files_order_a_row_per_row():
    table = pa.table({"b": [1.0, 2.0, 3.0], "a": ["x", "y", "z"], "c": [7, 8, 9]})
    frame = decode(parquet_of(table), PARQUET)
    assert list(frame.columns) == ["b", "a", "c"]
    assert cells(frame) == [[1.0, "x", 7.0], [2.0, "y", 8.0], [3.0, "z", 9.0]]


def test_rows_of_several_row_groups_keep_their_order():
    rows = np.arange(1000, dtype=np.float64)
    frame = decode(parquet_of(pa.table({"x": rows}), row_group_size=64), PARQUET)
    assert frame["x"].tolist() == rows.tolist()


@pytest.mark.parametrize("compression", ["snappy", "gzip", "zstd", "none"])
def test_every_common_compression_is_read(compression):
    body = parquet_of(pa.table({"x": [1.5, 2.5]}), compression=compression)
    assert decode(body, PARQUET)["x"].tolist() == [1.5, 2.5]


def test_a_pandas_index_stored_in_the_file_is_not_a_feature():
    frame = pd.DataFrame({"x": [1.5, 2.5]}, index=[10, 20])
    assert list(decode(parquet_of(frame), PARQUET).columns) == ["x"]


@pytest.mark.parametrize(("column", "kind"), [
    (pa.array([1, 2], pa.timestamp("ms")), "timestamp[ms]"),
    (pa.array([1, 2], pa.date32()), "date32[day]"),
    (pa.array([1, 2], pa.duration("s")), "duration[s]"),
    (pa.array([[1, 2], [3]]), "list<element: int64>"),
    (pa.array([{"a": 1}, {"a": 2}]), "struct<a: int64>"),
    (pa.array([b"x", b"y"]), "binary"),
])
def test_a_column_of_a_type_no_model_takes_is_a_400_naming_column_and_type(column, kind):
    body = parquet_of(pa.table({"fine": [1.0, 2.0], "when": column}))
    with pytest.raises(BadRequest) as raised:
        decode(body, PARQUET)
    assert raised.value.status == 400
    assert raised.value.message == (f"Parquet column 'when' is of type {kind}, which a model cannot take; "
                                    f"send numbers, text, booleans or categories")


VALID = parquet_of(pa.table({"x": [1.5, 2.5, 3.5], "y": ["a", "b", "c"]}))


@pytest.mark.parametrize(("body", "message"), [
    (b"5.1,3.5,1.4,0.2\n", "the body is not a Parquet file (it must start and end with 'PAR1')"),
    (b"PAR1", "the body is not a Parquet file (it must start and end with 'PAR1')"),
    (VALID[: len(VALID) // 2], "the body is not a Parquet file (it must start and end with 'PAR1')"),
    (b"PAR1" + bytes(32) + b"PAR1", "the body is not a valid Parquet file ("),
    (VALID[:40] + bytes(20) + VALID[60:], "the body is not a valid Parquet file ("),
])
def test_a_body_that_is_not_parquet_is_a_400_with_a_short_reason(body, message):
    with pytest.raises(BadRequest) as raised:
        decode(body, PARQUET)
    assert raised.value.status == 400
    assert raised.value.message.startswith(message)
    assert len(raised.value.message) < 300 and "\n" not in raised.value.message


def test_a_text_column_that_is_not_utf8_is_a_400_not_a_server_error():
    offsets = pa.py_buffer(np.array([0, 2, 4], np.int32).tobytes())
    column = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"\xff\xfeok")])  # unchecked
    with pytest.raises(BadRequest) as raised:
        decode(parquet_of(pa.table({"x": column})), PARQUET)
    assert raised.value.message.startswith("the body is not a valid Parquet file (")


@pytest.mark.parametrize(("table", "message"), [
    (pa.table({"x": pa.array([], pa.float64())}), "the Parquet body holds no rows"),
    (pa.table({}), "the Parquet body holds no columns"),
])
def test_a_parquet_body_without_rows_or_columns_is_a_400(table, message):
    with pytest.raises(BadRequest, match=message):
        decode(parquet_of(table), PARQUET)


MB = 2**20
# A million equal values: a few KB of Parquet, 8 MB once read; a 1 MB body holds 524,288 as CSV ("0,")
ZEROS = parquet_of(pa.table({"x": np.zeros(1_000_000)}), compression="zstd")


def test_a_parquet_body_of_more_values_than_the_payload_limit_holds_as_csv_is_a_413():
    assert len(ZEROS) < 64 * 1024
    with pytest.raises(PayloadTooLarge) as raised:
        decode(ZEROS, PARQUET, payload_limit=MB)
    assert raised.value.status == 413
    assert raised.value.message == ("the Parquet body holds 1,000,000 rows of 1 columns, more values than a body "
                                    "of the 1 MB limit holds as CSV (524,288); send fewer rows")


def test_the_same_parquet_body_within_the_payload_limit_is_read():
    assert len(decode(ZEROS, PARQUET, payload_limit=2 * MB)) == 1_000_000


def test_a_feature_named_twice_is_refused_by_name_when_conformed():
    table = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0])], names=["x", "x"])
    contract = InputContract((Column("x", False, True),), frame=True, accepts_infinite=True, measured=True)
    with pytest.raises(BadRequest, match="feature 'x' is named more than once"):
        conform(decode(parquet_of(table), PARQUET), contract)


# -- the Flask app, with the hooks of algo/predictor.py -----------------------------------------

@pytest.fixture(scope="module")
def colour_model(iris):
    """Iris with a text column, one-hot encoded, fitted on a DataFrame: a model with named columns."""
    features, labels = iris
    frame = pd.DataFrame(features, columns=NAMES)
    frame["colour"] = np.where(features[:, 2] > 2.5, "blue", "white")
    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["colour"]), remainder="passthrough")
    return make_pipeline(encode, LogisticRegression(max_iter=1000)).fit(frame, labels), frame


def post(client, body: bytes, **headers):
    return client.post("/invocations", data=body, content_type=PARQUET, headers=headers)


def test_a_parquet_body_answers_what_the_model_predicts_for_each_row_in_order(serve_model, iris_pipeline, iris):
    features, _ = iris
    rows = pd.DataFrame(features[np.random.default_rng(3).permutation(len(features))], columns=NAMES)
    response = post(serve_model(iris_pipeline), parquet_of(rows[NAMES[::-1]]), Accept="application/json")
    assert response.status_code == 200, response.data
    assert response.json["predictions"] == iris_pipeline.predict(rows).tolist()


def test_a_parquet_body_with_a_text_column_answers_what_the_model_predicts(serve_model, colour_model):
    model, frame = colour_model
    rows = frame.sample(frac=1.0, random_state=4).reset_index(drop=True)
    rows["colour"] = pd.Categorical(rows["colour"])  # as a category, the way Spark or pandas may write it
    response = post(serve_model(model), parquet_of(rows), Accept="application/json")
    assert response.status_code == 200, response.data
    assert response.json["predictions"] == model.predict(rows.astype({"colour": object})).tolist()


def test_a_parquet_body_whose_names_do_not_match_the_models_is_a_400(serve_model, iris_pipeline):
    body = parquet_of(pd.DataFrame({"sepal_length": [5.1], "petal_colour": ["red"]}))
    response = post(serve_model(iris_pipeline), body)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == ("feature names do not match the model's (missing 'sepal_width', "
                                               "'petal_length', 'petal_width'; unknown 'petal_colour')\n")


def test_a_null_is_a_400_naming_its_row_for_a_model_that_needs_values(serve_model, iris_pipeline):
    body = parquet_of(pa.table({**{n: [1.0, 2.0] for n in NAMES}, "petal_width": pa.array([0.2, None])}))
    response = post(serve_model(iris_pipeline), body)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == (
        "row 2, column 4 (petal_width) is missing; this model needs a value there\n")


@pytest.mark.parametrize("body", [b"not parquet at all", VALID[:-8] + b"PAR1", b"PAR1" + bytes(100) + b"PAR1"])
def test_a_damaged_parquet_body_is_a_400_without_a_traceback(serve_model, iris_pipeline, body):
    response = post(serve_model(iris_pipeline), body)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Parquet" in text and "Traceback" not in text and text.count("\n") == 1


def test_a_parquet_body_that_unpacks_past_the_servers_payload_limit_is_a_413(serve_model, iris_pipeline):
    body = parquet_of(pa.table({name: np.zeros(300_000) for name in NAMES}), compression="zstd")
    response = post(serve_model(iris_pipeline, max_payload_mb=1), body)
    assert response.status_code == 413
    assert response.get_data(as_text=True) == (
        "the Parquet body holds 300,000 rows of 4 columns, more values than a body of the 1 MB limit holds "
        "as CSV (524,288); send fewer rows\n")
