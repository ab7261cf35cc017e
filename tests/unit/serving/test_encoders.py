"""Predictions to response bodies: one line per input row in CSV and JSON Lines, in input order, quoted only
where CSV needs it; records in every type; NaN as null in JSON; and counting the answers a body holds."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from sagemaker_byo.errors import NotAcceptable
from sagemaker_byo.serving.encoders import ENCODERS, count, encode, encode_csv


@pytest.mark.parametrize(("prediction", "expected"), [
    (np.array(["setosa", "virginica", "setosa"]), b"setosa\nvirginica\nsetosa\n"),
    (np.array([0, 2, 1]), b"0\n2\n1\n"),
    (np.array([0.5, 1.25]), b"0.5\n1.25\n"),
    (np.array([True, False]), b"True\nFalse\n"),
    ([1, 2], b"1\n2\n"),  # a plain list works too
    (["a", "b"], b"a\nb\n"),
    (np.float64(0.75), b"0.75\n"),  # a single value is one row
    (np.array("setosa"), b"setosa\n"),
    (np.array([[0.1, 0.9], [1.0, 0.0]]), b"0.1,0.9\n1.0,0.0\n"),  # probabilities
    (np.array([[1, 2, 3]]), b"1,2,3\n"),
    (np.array([["a", "b"]]), b"a,b\n"),
])
def test_predictions_become_one_csv_line_per_row(prediction, expected):
    assert encode_csv(prediction) == expected


@pytest.mark.parametrize(("label", "cell"), [
    ("a,b", '"a,b"'),
    ('say "hi"', '"say ""hi"""'),
    ("two\nlines", '"two\nlines"'),
    ("cr\rhere", '"cr\rhere"'),
])
def test_labels_with_csv_syntax_are_quoted_and_read_back_unchanged(label, cell):
    body = encode_csv(np.array([label, "plain"], dtype=object))
    assert body.decode() == f"{cell}\nplain\n"
    assert [row[0] for row in csv.reader(io.StringIO(body.decode(), newline=""))] == [label, "plain"]


def test_output_rows_keep_the_input_order():
    labels = np.array([f"class-{i % 7}-{i}" for i in range(1000)])
    assert encode_csv(labels).decode().splitlines() == labels.tolist()


def test_row_count_matches_for_a_two_dimensional_prediction():
    probabilities = np.random.default_rng(1).random((50, 3))
    lines = encode_csv(probabilities).decode().splitlines()
    assert len(lines) == 50
    np.testing.assert_array_equal(np.array([line.split(",") for line in lines], dtype=float), probabilities)


def test_float_predictions_round_trip_exactly():
    values = np.array([0.1, 1 / 3, 1e-300, 123456789.123456789])
    assert np.array(encode_csv(values).decode().split(), dtype=np.float64).tolist() == values.tolist()


def test_encode_uses_the_encoder_for_the_negotiated_type():
    assert encode(np.array(["x"]), "text/csv") == b"x\n"
    assert set(ENCODERS) == {"text/csv", "application/json", "application/jsonlines"}


@pytest.mark.parametrize("accept", ["application/xml", "text/plain", "*/*"])
def test_encode_refuses_a_type_without_an_encoder(accept):
    with pytest.raises(NotAcceptable) as raised:
        encode(np.array([1]), accept)
    assert raised.value.status == 406
    assert "this model answers in text/csv, application/json, application/jsonlines" in raised.value.message


@pytest.mark.parametrize(("prediction", "expected"), [
    (np.array(["a", 1, "b"], dtype=object), b"a\n1\nb\n"),
    (np.array([1, "b", 2.5, None, True], dtype=object), b"1\nb\n2.5\nNone\nTrue\n"),
    (np.array([np.str_("a"), "b"], dtype=object), b"a\nb\n"),  # numpy's str is text too
])
def test_object_labels_of_any_type_are_written_as_their_str(prediction, expected):
    assert encode_csv(prediction) == expected


@pytest.mark.parametrize(("labels", "expected"), [
    (["a,b", 1, 'say "hi"'], '"a,b"\n1\n"say ""hi"""\n'),
    (["two\nlines", 3], '"two\nlines"\n3\n'),
    ([7, "cr\rhere"], '7\n"cr\rhere"\n'),
])
def test_mixed_object_labels_with_csv_syntax_are_quoted_and_read_back(labels, expected):
    body = encode_csv(np.array(labels, dtype=object)).decode()
    assert body == expected
    assert [row[0] for row in csv.reader(io.StringIO(body, newline=""))] == [str(label) for label in labels]


@pytest.mark.parametrize(("prediction", "expected"), [
    (np.array(["setosa", "virginica"], dtype="U"), "setosa\nvirginica\n"),
    (np.array(["café", "日本", "ünïcode"]), "café\n日本\nünïcode\n"),
    (np.array(["a,b", "c"]), '"a,b"\nc\n'),
    (np.array(['say "hi"', "c"]), '"say ""hi"""\nc\n'),
    (np.array(["two\nlines", "c"]), '"two\nlines"\nc\n'),
])
def test_numpy_unicode_labels_are_written_as_utf8_text(prediction, expected):
    assert prediction.dtype.kind == "U"
    assert encode_csv(prediction) == expected.encode("utf-8")


def test_a_text_enum_label_is_written_as_its_text_alone_or_among_other_labels():
    from enum import Enum

    class Colour(str, Enum):  # noqa: UP042 - str() of this one is "Colour.RED", unlike StrEnum
        RED = "red"

    assert encode(np.array([Colour.RED, "blue"], dtype=object), "text/csv") == b"red\nblue\n"
    assert encode(np.array([Colour.RED, 1], dtype=object), "text/csv") == b"red\n1\n"
    assert encode(np.array([Colour.RED, "a,b"], dtype=object), "text/csv") == b'red\n"a,b"\n'


# -- records, missing values and counting answers ----------------------------------------------

RECORDS = [{"label": "cat", "score": 0.75}, {"label": "dog", "score": np.float64(0.5), "note": "a,b"}]


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/json", b'{"predictions": [{"label": "cat", "score": 0.75}, '
                         b'{"label": "dog", "score": 0.5, "note": "a,b"}]}'),
    ("application/jsonlines", b'{"label": "cat", "score": 0.75}\n{"label": "dog", "score": 0.5, "note": "a,b"}\n'),
    ("text/csv", b'cat,0.75,\ndog,0.5,"a,b"\n'),  # a column per key in first-seen order, no header
])
def test_records_are_encoded_in_every_type(accept, expected):
    assert encode(RECORDS, accept) == expected


def test_records_with_nested_values_and_booleans_are_csv_cells():
    body = encode_csv([{"ok": True, "scores": [0.25, 0.75]}, {"ok": False, "scores": None}])
    assert list(csv.reader(io.StringIO(body.decode()))) == [["true", "[0.25, 0.75]"], ["false", ""]]


@pytest.mark.parametrize(("prediction", "accept", "expected"), [
    (np.array([0.5, np.nan]), "application/json", b'{"predictions": [0.5, null]}'),
    (np.array([[np.nan, 1.0]]), "application/jsonlines", b"[null, 1.0]\n"),
    ([{"score": float("nan")}], "application/json", b'{"predictions": [{"score": null}]}'),
    ([{"score": np.inf}], "application/jsonlines", b'{"score": null}\n'),
    ([{"score": np.nan, "label": "x"}], "text/csv", b",x\n"),
])
def test_a_missing_or_infinite_value_is_null_in_json_and_an_empty_cell_in_csv(prediction, accept, expected):
    assert encode(prediction, accept) == expected


@pytest.mark.parametrize("accept", list(ENCODERS))
@pytest.mark.parametrize("prediction", [
    np.array(["a", "b,c", 'say "hi"']),
    np.array([[0.1, 0.9], [1.0, 0.0], [0.5, 0.5]]),
    [{"label": "two\nlines", "score": 1}, {"label": "b"}, {"score": 2}],
])
def test_count_reads_back_one_answer_per_row(prediction, accept):
    assert count(encode(prediction, accept), accept) == 3


@pytest.mark.parametrize(("body", "accept", "expected"), [
    (b"a\nb", "text/csv", 2),  # no final newline
    (b"", "text/csv", 0),
    (b'["a", "b"]', "application/json", 2),  # a bare list
    (b'{"labels": ["a"]}', "application/json", None),  # a shape it does not know: not checked
    (b"not json", "application/json", None),
    (b"a\n", "application/xml", None),
])
def test_count_of_a_custom_body(body, accept, expected):
    assert count(body, accept) == expected
