"""The input contract: measured by calling a model's own predict (never inferred from its class)
over several kinds of model built here, saved in model.json and read back, and how `conform`
holds a request to it with a 400 naming row and column, and hands the model its numbers in the
dtype it was fitted on (tried with the scikit-learn estimators a catalogue could build)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import Birch, BisectingKMeans, KMeans, MiniBatchKMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest, RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, LocalOutlierFactor, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from sagemaker_byo.contract import (
    UNKNOWN,
    Column,
    InputContract,
    conform,
    measure,
    measure_loaded,
    sample_dtype,
)
from sagemaker_byo.errors import AlgorithmError, BadRequest
from sagemaker_byo.serving.decoders import decode

NAMES = ("colour", "length", "size")
HEADERLESS = ("column_2", "column_3")
NUMBERS = pd.DataFrame({"column_2": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "column_3": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2]})
LABELS = ["no", "yes", "no", "yes", "no", "yes"]
CATEGORIES = pd.DataFrame({"colour": ["red", "blue", "red", "green"], "length": [1.0, 2.0, 3.0, 4.0],
                           "size": ["S", "M", "L", "M"]})
TEXTS = pd.DataFrame({"review": ["good great fine", "bad awful poor", "great good", "poor bad awful"]})


def numeric(names, accepts_missing, frame=False) -> InputContract:
    return InputContract(tuple(Column(n, False, accepts_missing) for n in names), frame, False, True)


@pytest.fixture(scope="module")
def tree():
    return DecisionTreeClassifier(random_state=0).fit(NUMBERS.to_numpy(), LABELS)


@pytest.fixture(scope="module")
def knn():
    """StandardScaler + KNeighborsClassifier: refuses missing values."""
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=1)).fit(NUMBERS.to_numpy(), LABELS)


@pytest.fixture(scope="module")
def text_model():
    """TF-IDF on one text column of a DataFrame."""
    vectorize = ColumnTransformer([("text", TfidfVectorizer(), "review")])
    return make_pipeline(vectorize, LogisticRegression()).fit(TEXTS, ["pos", "neg", "pos", "neg"])


@pytest.fixture(scope="module")
def categorical_model():
    """A ColumnTransformer with OrdinalEncoder, as algo/train builds one for text columns."""
    encode = ColumnTransformer([("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                                 ["colour", "size"])], remainder="passthrough")
    return make_pipeline(encode, DecisionTreeClassifier(random_state=0)).fit(CATEGORIES, ["no", "yes", "no", "yes"])


class Doubler:
    """Not scikit-learn: only a predict, of arrays of numbers, that refuses missing values."""

    n_features_in_ = 2

    def predict(self, data):
        array = np.asarray(data, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != 2 or np.isnan(array).any():
            raise ValueError("two numbers per row, please")
        return array.sum(axis=1) * 2


# -- measuring --------------------------------------------------------------------------------

def test_a_tree_takes_an_array_with_missing_values_but_no_infinity(tree):
    assert measure(tree, NUMBERS) == numeric(HEADERLESS, True)
    assert measure_loaded(tree) == numeric(HEADERLESS, True)


def test_a_scaler_and_knn_pipeline_refuses_missing_values(knn):
    assert measure(knn, NUMBERS) == numeric(HEADERLESS, False)
    assert measure_loaded(knn) == numeric(HEADERLESS, False)


def test_a_tfidf_pipeline_takes_its_text_column_as_a_dataframe(text_model):
    measured = measure(text_model, TEXTS)
    assert measured.frame and measured.measured
    assert measured.names == ("review",) and measured.text_columns == ("review",)
    loaded = measure_loaded(text_model)  # the vectorizer's words tell which column holds text
    assert loaded.names == ("review",) and loaded.text_columns == ("review",) and loaded.frame


def test_an_ordinal_encoder_pipeline_has_text_columns_among_numbers(categorical_model):
    measured = measure(categorical_model, CATEGORIES)
    assert measured.names == NAMES and measured.text_columns == ("colour", "size") and measured.frame
    loaded = measure_loaded(categorical_model)
    assert loaded.names == NAMES and loaded.text_columns == ("colour", "size")


def test_an_older_model_json_gives_names_and_text_columns_to_a_model_without_them(tree):
    loaded = measure_loaded(tree, names=["a", "b"], text=[])
    assert loaded == numeric(("a", "b"), True)


def test_a_non_scikit_learn_model_is_measured_by_its_predict_alone():
    expected = InputContract(tuple(Column(n, False, False) for n in HEADERLESS), False, True, True)  # sums inf
    assert measure_loaded(Doubler()) == expected
    assert measure(Doubler(), NUMBERS) == expected


def test_an_object_without_feature_count_or_predict_has_an_unknown_contract():
    assert measure_loaded(object()) == UNKNOWN
    data = np.array([["anything", 1.0]], dtype=object)
    assert conform(data, UNKNOWN) is data  # requests go to it as decoded


def test_a_model_that_cannot_predict_its_training_rows_is_an_algorithm_error_naming_why():
    class Broken:
        def predict(self, data):
            raise RuntimeError("the weights were never loaded")

    with pytest.raises(AlgorithmError) as raised:
        measure(Broken(), NUMBERS)
    assert str(raised.value) == (
        "the fitted model (Broken) does not predict its own training rows (numbers as float64, as it was fitted on "
        "them): RuntimeError: the weights were never loaded; a model the server could not use is not saved")


def test_a_model_answering_too_few_rows_for_its_training_rows_is_an_algorithm_error():
    class OneAnswer:
        def predict(self, data):
            return np.zeros(1)

    with pytest.raises(AlgorithmError, match=r"predict gave an answer of shape \(1,\) for 4 rows"):
        measure(OneAnswer(), NUMBERS)


# -- model.json -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    UNKNOWN,
    numeric(HEADERLESS, True),
    InputContract((Column("colour", True, True), Column("length", False, False)), True, False, True),
])
def test_the_contract_round_trips_through_json(value):
    assert InputContract.from_json(json.loads(json.dumps(value.as_json()))) == value


def test_measured_contracts_round_trip_through_json(categorical_model, text_model, knn):
    for model, sample in ((categorical_model, CATEGORIES), (text_model, TEXTS), (knn, NUMBERS)):
        measured = measure(model, sample)
        assert InputContract.from_json(measured.as_json()) == measured


# -- conforming -------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"1,2\n,3\n", "text/csv", "row 2, column 1 is missing; this model needs a value there"),
    (b"1,2\n\n", "text/csv", "row 2, column 1 is missing; this model needs a value there"),  # a blank line
    (b"1,inf\n", "text/csv", "row 1, column 2 is infinite or too large; send finite numbers"),
    (b"1,x\n", "text/csv", "row 1, column 2: 'x' is not a number"),
    (b"1,2,3\n", "text/csv", "row 1 has 3 values; the model takes 2"),
])
def test_conform_names_row_and_column_for_a_headerless_model(knn, body, content_type, message):
    with pytest.raises(BadRequest) as raised:
        conform(decode(body, content_type), measure_loaded(knn))
    assert raised.value.status == 400 and raised.value.message == message


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"red,long,S\n", "text/csv", "row 1, column 2 (length): 'long' is not a number"),
    (b"red,1,S\nblue,2,M\ngreen,x,L\n", "text/csv", "row 3, column 2 (length): 'x' is not a number"),
    (b'[{"length": "tall", "colour": "red", "size": "S"}]', "application/json",
     "row 1, column 2 (length): 'tall' is not a number"),  # numbered in the model's column order
    (b"red,inf,S\n", "text/csv", "row 1, column 2 (length) is infinite or too large; send finite numbers"),
])
def test_conform_names_the_models_feature_after_the_column_number(categorical_model, body, content_type, message):
    with pytest.raises(BadRequest) as raised:
        conform(decode(body, content_type), measure(categorical_model, CATEGORIES))
    assert raised.value.message == message


def test_a_features_only_models_headerless_names_say_nothing_more():
    features_only = numeric(("column_1", "column_2"), False)  # no target: columns named from column_1
    with pytest.raises(BadRequest) as raised:
        conform(decode(b"1,2\n3,\n", "text/csv"), features_only)
    assert raised.value.message == "row 2, column 2 is missing; this model needs a value there"


def test_a_text_column_refusing_missing_values_names_its_cell():
    refusing = InputContract((Column("colour", True, False), Column("length", False, True)), True, False, True)
    with pytest.raises(BadRequest) as raised:
        conform(decode(b"red,1\n,2\n", "text/csv"), refusing)
    assert raised.value.message == "row 2, column 1 (colour) is missing; this model needs a value there"


@pytest.mark.parametrize(("body", "content_type"), [
    (b"red,1.5,S\nblue,2,M\npurple,9,XXL\n", "text/csv"),  # categories training never saw pass
    (b'[["red", 1.5, "S"], ["blue", 2, "M"], ["purple", 9, "XXL"]]', "application/json"),
    (b'[{"size": "S", "colour": "red", "length": 1.5}, {"colour": "blue", "length": 2, "size": "M"}, '
     b'{"length": 9, "size": "XXL", "colour": "purple"}]', "application/json"),  # records in any order
])
def test_conformed_rows_predict_as_the_categorical_pipeline_does(categorical_model, body, content_type):
    frame = conform(decode(body, content_type), measure(categorical_model, CATEGORIES))
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(NAMES)
    assert frame["length"].dtype == np.float64
    expected = categorical_model.predict(pd.DataFrame(
        {"colour": ["red", "blue", "purple"], "length": [1.5, 2.0, 9.0], "size": ["S", "M", "XXL"]}))
    assert categorical_model.predict(frame).tolist() == expected.tolist()


def test_a_missing_category_stays_missing_for_a_pipeline_that_takes_it(categorical_model):
    measured = measure(categorical_model, CATEGORIES)
    frame = conform(decode(b",1.5,\n", "text/csv"), measured)
    assert frame["colour"].isna().all() and frame["size"].isna().all()


@pytest.mark.parametrize(("body", "content_type"), [
    (b"red,1,1\n", "text/csv"),
    (b'[["red", 1, 1]]', "application/json"),
])
def test_a_number_in_a_text_column_matches_the_category_training_read(categorical_model, body, content_type):
    frame = conform(decode(body, content_type), measure(categorical_model, CATEGORIES))
    assert frame["size"].tolist() == ["1"]


def test_conformed_text_rows_predict_as_the_tfidf_pipeline_does(text_model):
    frame = conform(decode(b"great good\nawful\n", "text/csv"), measure(text_model, TEXTS))
    assert text_model.predict(frame).tolist() == text_model.predict(
        pd.DataFrame({"review": ["great good", "awful"]})).tolist()


def test_conformed_rows_predict_as_a_non_scikit_learn_model_does():
    rows = conform(decode(b"1,2\n3,4\n", "text/csv"), measure_loaded(Doubler()))
    assert Doubler().predict(rows).tolist() == [6.0, 14.0]


# -- the numbers' dtype: what the model was fitted on --------------------------------------------

ROWS = np.random.default_rng(0).normal(3.0, 1.5, size=(60, 3)).round(2)
ROW_LABELS = np.where(ROWS[:, 0] > 3.0, "yes", "no")
AS_READ = pd.DataFrame(ROWS.astype(np.float32), columns=["column_2", "column_3", "column_4"])  # the channel reader's
BODY = b"3.1,2.7,4.4\n1.25,3.3,0.7\n5.5,1.9,2.0\n"
BODY_ROWS = np.array([[3.1, 2.7, 4.4], [1.25, 3.3, 0.7], [5.5, 1.9, 2.0]])

# scikit-learn 1.8: each of these predicts only the dtype it was fitted on.
STRICT = {
    "KMeans": lambda: KMeans(3, n_init=2, random_state=0),
    "MiniBatchKMeans": lambda: MiniBatchKMeans(3, n_init=2, random_state=0),
    "BisectingKMeans": lambda: BisectingKMeans(3, random_state=0),
    "scaler + KMeans": lambda: make_pipeline(StandardScaler(), KMeans(3, n_init=2, random_state=0)),
}
# The others a catalogue could build, tried the same way: each takes either dtype.
EITHER = {
    "Birch": lambda: Birch(n_clusters=3),
    "NearestCentroid": NearestCentroid,
    "IsolationForest": lambda: IsolationForest(n_estimators=10, random_state=0),
    "LocalOutlierFactor": lambda: LocalOutlierFactor(n_neighbors=5, novelty=True),
    "DecisionTree": lambda: DecisionTreeClassifier(random_state=0),
    "RandomForest": lambda: RandomForestClassifier(n_estimators=5, random_state=0),
    "HistGradientBoosting": lambda: HistGradientBoostingClassifier(max_iter=5),
    "SVC": SVC,
    "KNN": lambda: KNeighborsClassifier(n_neighbors=3),
    "scaler + logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression()),
}


def fitted(build, dtype):
    return build().fit(ROWS.astype(dtype), ROW_LABELS)


@pytest.mark.parametrize("name", STRICT)
def test_a_model_strict_about_dtype_is_fitted_on_float32_and_refuses_float64(name):
    """The premise of the dtype rule: if scikit-learn relaxes it, these tests say nothing."""
    model = fitted(STRICT[name], np.float32)
    model.predict(ROWS.astype(np.float32))
    with pytest.raises(ValueError, match="Buffer dtype mismatch"):
        model.predict(ROWS)


@pytest.mark.parametrize("name", [*STRICT, *EITHER])
def test_a_model_fitted_on_float32_is_served_float32_and_answers_as_its_own_predict(name):
    model = fitted({**STRICT, **EITHER}[name], np.float32)
    measured = measure(model, AS_READ)
    assert measured.dtype == "float32" and measured.measured
    rows = conform(decode(BODY, "text/csv"), measured)
    assert rows.dtype == np.float32
    assert model.predict(rows).tolist() == model.predict(BODY_ROWS.astype(np.float32)).tolist()
    restored = InputContract.from_json(json.loads(json.dumps(measured.as_json())))
    assert restored == measured and restored.as_json()["dtype"] == "float32"


@pytest.mark.parametrize("name", STRICT)
def test_a_model_fitted_on_float64_is_served_float64(name):
    model = fitted(STRICT[name], np.float64)
    measured = measure(model, AS_READ.astype(np.float64))
    assert measured.dtype == "float64"
    rows = conform(decode(BODY, "text/csv"), measured)
    assert rows.dtype == np.float64
    assert model.predict(rows).tolist() == model.predict(BODY_ROWS).tolist()


@pytest.mark.parametrize("name", STRICT)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_model_trained_elsewhere_is_measured_in_the_dtype_it_predicts(name, dtype):
    model = fitted(STRICT[name], dtype)
    measured = measure_loaded(model)
    assert measured.dtype == dtype and measured.measured
    assert model.predict(conform(decode(BODY, "text/csv"), measured)).tolist() == \
        model.predict(BODY_ROWS.astype(dtype)).tolist()


def test_a_model_that_takes_either_dtype_is_measured_float64_when_trained_elsewhere(knn):
    assert measure_loaded(knn).dtype == "float64"


def test_the_dtype_the_fit_got_can_be_given_when_the_sample_does_not_carry_it():
    model = fitted(STRICT["KMeans"], np.float32)
    assert measure(model, AS_READ.astype(np.float64), dtype="float32").dtype == "float32"
    with pytest.raises(AlgorithmError, match="numbers as float64.*Buffer dtype mismatch"):
        measure(model, AS_READ.astype(np.float64))


@pytest.mark.parametrize(("sample", "expected"), [
    (pd.DataFrame({"a": [1.5], "b": [2.0]}, dtype=np.float32), "float32"),
    (pd.DataFrame({"a": np.float32([1.5]), "b": [True]}), "float32"),
    (pd.DataFrame({"a": np.float32([1.5]), "b": [2.0]}), "float64"),
    (pd.DataFrame({"a": np.float32([1.5]), "b": [2]}), "float64"),  # as numpy (and scikit-learn) join them
    (pd.DataFrame({"a": np.float32([1.5]), "b": pd.array([2], dtype="Int64")}), "float64"),
    (pd.DataFrame({"a": ["x"]}), "float64"),  # no numbers
])
def test_the_samples_dtype_is_numpys_common_type_of_its_numeric_columns(sample, expected):
    assert sample_dtype(sample) == expected


def test_an_older_model_json_without_a_dtype_means_float64():
    saved = numeric(HEADERLESS, True).as_json()
    del saved["dtype"]
    assert InputContract.from_json(saved).dtype == "float64"


def test_a_model_json_with_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="dtype 'float16' is not one of float64, float32"):
        InputContract.from_json({**numeric(HEADERLESS, True).as_json(), "dtype": "float16"})


def test_a_dataframe_models_numeric_columns_are_served_float32_with_its_text():
    frame = CATEGORIES.astype({"length": np.float32})
    encode = ColumnTransformer([("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                                 ["colour", "size"])], remainder="passthrough")
    model = make_pipeline(encode, KMeans(2, n_init=2, random_state=0)).fit(frame)
    measured = measure(model, frame)
    assert measured.dtype == "float32" and measured.frame
    rows = conform(decode(b"red,1.5,S\nblue,2,M\n", "text/csv"), measured)
    assert rows["length"].dtype == np.float32 and rows["colour"].tolist() == ["red", "blue"]
    assert model.predict(rows).tolist() == model.predict(pd.DataFrame(
        {"colour": ["red", "blue"], "length": np.array([1.5, 2.0], np.float32), "size": ["S", "M"]})).tolist()


def in_float32(contract: InputContract) -> InputContract:
    return dataclasses.replace(contract, dtype="float32")


TOO_LARGE = "is too large for the float32 numbers this model was trained on (over 3.4e38); send numbers within that"
SUMS = InputContract(tuple(Column(n, False, False) for n in HEADERLESS), False, True, True, "float32")  # takes inf
CATEGORICAL = InputContract((Column("colour", True, True), Column("length", False, True), Column("size", True, True)),
                            True, False, True, "float32")


@pytest.mark.parametrize(("body", "content_type", "contract", "message"), [
    (b"1,1e39\n", "text/csv", in_float32(numeric(HEADERLESS, True)), f"row 1, column 2 {TOO_LARGE}"),
    (b"1,2\n-4e38,2\n", "text/csv", in_float32(numeric(HEADERLESS, True)), f"row 2, column 1 {TOO_LARGE}"),
    (b"[[1, 2], [3, 1e39]]", "application/json", in_float32(numeric(HEADERLESS, True)),
     f"row 2, column 2 {TOO_LARGE}"),
    (b"1,1e39\n", "text/csv", SUMS, f"row 1, column 2 {TOO_LARGE}"),  # though it takes infinity
    (b"red,1e39,S\n", "text/csv", CATEGORICAL, f"row 1, column 2 (length) {TOO_LARGE}"),
    (b"1,inf\n", "text/csv", in_float32(numeric(HEADERLESS, True)),
     "row 1, column 2 is infinite or too large; send finite numbers"),  # the rules of float64 first
    (b"1,2\n,1e39\n", "text/csv", in_float32(numeric(HEADERLESS, False)),
     "row 2, column 1 is missing; this model needs a value there"),
])
def test_a_number_float32_cannot_hold_is_refused_for_a_float32_model(body, content_type, contract, message):
    with pytest.raises(BadRequest) as raised:
        conform(decode(body, content_type), contract)
    assert raised.value.message == message


def test_float32s_largest_numbers_and_infinity_where_taken_reach_a_float32_model():
    rows = conform(decode(b"3.4e38,-3.4e38\n1,inf\n", "text/csv"), SUMS)
    assert rows.dtype == np.float32 and np.isfinite(rows[0]).all() and rows[1].tolist() == [1.0, np.inf]


def test_a_float64_model_gets_numbers_beyond_float32_as_they_are():
    """Its own checks decide, as before the dtype was recorded (a tree refuses 1e39 itself)."""
    rows = conform(decode(b"1,1e39\n", "text/csv"), numeric(HEADERLESS, True))
    assert rows.dtype == np.float64 and rows.tolist() == [[1.0, 1e39]]
