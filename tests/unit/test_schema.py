"""The model schema with text columns: what algo/train's model.json adds to the model's own
attributes, and how `conform` treats text in categorical and numeric columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder
from sklearn.tree import DecisionTreeClassifier

from sagemaker_byo.decoders import decode
from sagemaker_byo.errors import BadRequest
from sagemaker_byo.inference import ModelSchema, conform

NAMES = ("colour", "length", "size")
CATEGORICAL = ModelSchema(3, NAMES, True, frozenset({"colour", "size"}), True, ("no", "yes"))


@pytest.fixture(scope="module")
def categorical_model():
    """A pipeline as algo/train builds one for text columns, fitted on a DataFrame."""
    frame = pd.DataFrame({"colour": ["red", "blue", "red", "green"], "length": [1.0, 2.0, 3.0, 4.0],
                          "size": ["S", "M", "L", "M"]})
    encode = ColumnTransformer([("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                                 ["colour", "size"])], remainder="passthrough")
    return make_pipeline(encode, DecisionTreeClassifier(random_state=0)).fit(frame, ["no", "yes", "no", "yes"])


def test_model_schema_takes_text_columns_and_missing_values_from_the_description(categorical_model):
    description = {"feature_names": list(NAMES), "categorical_features": ["colour", "size"],
                   "accepts_missing_values": True}
    assert ModelSchema.of(categorical_model, description) == CATEGORICAL


def test_model_schema_takes_feature_names_from_the_description_when_the_model_has_none():
    model = DecisionTreeClassifier().fit(np.zeros((2, 2)), [0, 1])
    schema = ModelSchema.of(model, {"feature_names": ["column_2", "column_3"], "accepts_missing_values": False})
    assert schema == ModelSchema(2, ("column_2", "column_3"), False, frozenset(), False, (0, 1))


def test_a_model_without_description_has_no_text_columns(categorical_model):
    assert ModelSchema.of(categorical_model).categorical == frozenset()


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    (b"red,1.5,S\n", "text/csv", [["red", 1.5, "S"]]),
    (b"purple,1.5,XXL\n", "text/csv", [["purple", 1.5, "XXL"]]),  # categories training never saw pass
    (b",1.5,\n", "text/csv", [[None, 1.5, None]]),  # a missing category stays missing
    (b'[["red", 2, "M"]]', "application/json", [["red", 2.0, "M"]]),
    (b'[{"size": "L", "colour": "blue", "length": 3}]', "application/json", [["blue", 3.0, "L"]]),
])
def test_text_is_kept_in_categorical_columns(body, content_type, expected):
    frame = conform(decode(body, content_type), CATEGORICAL)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(NAMES)
    assert [[None if isinstance(v, float) and np.isnan(v) else v for v in row]
            for row in frame.values.tolist()] == expected
    assert frame["length"].dtype == np.float64


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"red,long,S\n", "text/csv", "row 1, column 2: 'long' is not a number"),
    (b"red,1,S\nblue,2,M\ngreen,x,L\n", "text/csv", "row 3, column 2: 'x' is not a number"),
    (b'[{"length": "tall", "colour": "red", "size": "S"}]', "application/json",
     "row 1, column 2: 'tall' is not a number"),  # numbered in the model's column order
    (b"red,inf,S\n", "text/csv", "row 1, column 2 is infinite or too large; send finite numbers"),
])
def test_text_or_infinity_in_a_numeric_column_is_a_400_naming_row_and_column(body, content_type, message):
    with pytest.raises(BadRequest) as raised:
        conform(decode(body, content_type), CATEGORICAL)
    assert raised.value.status == 400
    assert raised.value.message == message


def test_a_categorical_schema_without_missing_values_refuses_only_missing_numbers():
    schema = ModelSchema(3, NAMES, True, frozenset({"colour", "size"}), False, None)
    assert conform(decode(b",1,S\n", "text/csv"), schema)["colour"].isna().all()  # the pipeline fills it
    with pytest.raises(BadRequest, match="row 1, column 2 is missing; this model needs every value"):
        conform(decode(b"red,,S\n", "text/csv"), schema)


def test_conformed_rows_predict_with_the_categorical_pipeline(categorical_model):
    frame = conform(decode(b"red,1,S\nblue,2,M\npurple,9,XXL\n", "text/csv"), CATEGORICAL)
    assert categorical_model.predict(frame).tolist() == categorical_model.predict(pd.DataFrame(
        {"colour": ["red", "blue", "purple"], "length": [1.0, 2.0, 9.0], "size": ["S", "M", "XXL"]})).tolist()


@pytest.mark.parametrize(("body", "content_type"), [
    (b"red,1,1\n", "text/csv"),
    (b'[["red", 1, 1]]', "application/json"),
])
def test_a_number_in_a_categorical_column_matches_the_category_training_read(body, content_type):
    frame = conform(decode(body, content_type), CATEGORICAL)
    assert frame["size"].tolist() == ["1"]
