"""Hyperparameters arrive as strings, sometimes JSON-encoded; the schema types and checks them."""

from __future__ import annotations

import pytest

from sagemaker_byo.errors import UserError
from sagemaker_byo.training.hyperparameters import Param, Schema, decode


@pytest.mark.parametrize(("raw", "expected"), [
    ('"gini"', "gini"),  # the SDK JSON-encodes strings
    ("gini", "gini"),  # ... but not always
    ("5", 5),
    ("5.0", 5.0),
    ("true", True),
    ("false", False),
    ("null", None),
    ('"\\"gini\\""', "gini"),  # encoded twice by a pipeline tool
    ('"5"', 5),
    (5, 5),  # already a Python value
    ("", ""),
])
def test_decode_undoes_json_encoding(raw, expected):
    assert decode(raw) == expected
    assert type(decode(raw)) is type(expected)


def test_decode_stops_after_two_rounds():
    thrice = '"\\"\\\\\\"gini\\\\\\"\\""'
    assert decode(thrice) == '"gini"'


@pytest.mark.parametrize(("param", "raw", "expected"), [
    (Param(int), "5", 5),
    (Param(int), '"5"', 5),
    (Param(int), "5.0", 5),  # a tuning job's integer range
    (Param(int), " 5 ", 5),
    (Param(int), "1e3", 1000),
    (Param(int), 7, 7),
    (Param(float), "0.25", 0.25),
    (Param(float), '"0.25"', 0.25),
    (Param(float), "3", 3.0),
    (Param(str), '"gini"', "gini"),
    (Param(str), " gini ", "gini"),
    (Param(str), "007", "007"),
    (Param(str), "true", "true"),  # decoded to True, given back as the user spelled it
    (Param(bool), "true", True),
    (Param(bool), "false", False),
    (Param(bool), '"false"', False),
    (Param(bool), "True", True),
    (Param(bool), "yes", True),
    (Param(bool), "off", False),
    (Param(bool), "1", True),
    (Param(bool), "0", False),
    (Param(str, choices=("gini", "entropy")), '"entropy"', "entropy"),
    (Param(int, choices=(1, 2, 4)), "4", 4),
])
def test_valid_value_is_converted_to_its_type(param, raw, expected):
    value = param.coerce("p", raw)
    assert value == expected
    assert type(value) is type(expected)


def test_json_encoded_string_hyperparameter_is_decoded():
    assert Param(str, choices=("gini", "entropy")).coerce("criterion", '"gini"') == "gini"


def test_json_encoded_numeric_looking_string_keeps_its_spelling():
    assert Param(str).coerce("version", '"1.10"') == "1.10"


@pytest.mark.parametrize("raw", ["null", '"null"', "None", "none", ""])
def test_null_is_none_for_a_nullable_parameter(raw):
    assert Param(int, low=1, nullable=True).coerce("max_depth", raw) is None


@pytest.mark.parametrize("raw", ["null", '"null"', "None"])
def test_null_is_rejected_for_a_parameter_that_is_not_nullable(raw):
    with pytest.raises(UserError, match=r"'min_samples_split' must be an integer >= 2, got"):
        Param(int, 2, low=2).coerce("min_samples_split", raw)


@pytest.mark.parametrize(("param", "raw", "message"), [
    (Param(int, low=1), "0", "must be an integer >= 1, got '0'"),
    (Param(int, low=1, high=10), "11", "must be an integer >= 1 and <= 10, got '11'"),
    (Param(int), "5.5", "must be an integer, got '5.5'"),
    (Param(int), "true", "must be an integer, got 'true'"),  # a boolean is not a number
    (Param(int), "abc", "must be an integer, got 'abc'"),
    (Param(int), "NaN", "must be an integer, got 'NaN'"),
    (Param(int), "1e400", "must be an integer, got '1e400'"),
    (Param(float, low=0, high=1), "1.5", "must be a number >= 0 and <= 1, got '1.5'"),
    (Param(float, low=0.5), "0.25", "must be a number >= 0.5, got '0.25'"),
    (Param(float), "NaN", "must be a number, got 'NaN'"),
    (Param(float), "Infinity", "must be a number, got 'Infinity'"),
    (Param(float), "false", "must be a number, got 'false'"),
    (Param(bool), "2", "must be true or false, got '2'"),
    (Param(bool), "maybe", "must be true or false, got 'maybe'"),
    (Param(str), "[1]", "must be a string, got '[1]'"),
    (Param(str, choices=("gini", "entropy")), "GINI", "must be one of 'gini', 'entropy', got 'GINI'"),
    (Param(str, choices=("gini",), nullable=True), "log_loss", "must be one of 'gini' (or null), got 'log_loss'"),
])
def test_invalid_value_is_a_user_error_naming_what_is_allowed(param, raw, message):
    with pytest.raises(UserError) as raised:
        param.coerce("p", raw)
    assert str(raised.value) == f"hyperparameter 'p' {message}"


SCHEMA = Schema({
    "criterion": Param(str, "gini", choices=("gini", "entropy")),
    "max_depth": Param(int, None, low=1, nullable=True),
    "min_samples_split": Param(int, 2, low=2),
})


def test_parse_fills_in_defaults_for_missing_parameters():
    assert SCHEMA.parse({}) == {"criterion": "gini", "max_depth": None, "min_samples_split": 2}


def test_parse_types_every_given_value():
    parsed = SCHEMA.parse({"criterion": '"entropy"', "max_depth": "5.0", "min_samples_split": "3"})
    assert parsed == {"criterion": "entropy", "max_depth": 5, "min_samples_split": 3}
    assert isinstance(parsed["max_depth"], int)


@pytest.mark.parametrize("key", [
    "_tuning_objective_metric", "sagemaker_program", "sagemaker_submit_directory",
    "sagemaker_container_log_level", "_anything_private",
])
def test_keys_added_by_sagemaker_are_ignored(key):
    assert SCHEMA.parse({key: '"validation:accuracy"', "max_depth": "3"}) == {
        "criterion": "gini", "max_depth": 3, "min_samples_split": 2,
    }


def test_unknown_name_is_rejected_listing_the_allowed_names():
    with pytest.raises(UserError) as raised:
        SCHEMA.parse({"max_dept": "3"})
    assert str(raised.value) == (
        "unknown hyperparameter 'max_dept'; allowed: criterion, max_depth, min_samples_split"
    )


def test_several_unknown_names_are_all_named_in_order():
    with pytest.raises(UserError, match=r"^unknown hyperparameters 'Criterion', 'zeta'; allowed: "):
        SCHEMA.parse({"zeta": "1", "Criterion": "gini"})


def test_out_of_range_value_is_rejected_by_parse():
    with pytest.raises(UserError, match="'min_samples_split' must be an integer >= 2, got '1'"):
        SCHEMA.parse({"min_samples_split": "1"})


@pytest.mark.parametrize("raw", [[], "criterion=gini", None, 3])
def test_hyperparameters_that_are_not_an_object_are_rejected(raw):
    with pytest.raises(UserError, match="JSON object of name-value pairs"):
        SCHEMA.parse(raw)


@pytest.mark.parametrize(("param", "described"), [
    (Param(int, low=1), "an integer >= 1"),
    (Param(int, low=1, nullable=True), "an integer >= 1 (or null)"),
    (Param(float, low=0, high=0.5), "a number >= 0 and <= 0.5"),
    (Param(str), "a string"),
    (Param(bool), "true or false"),
    (Param(str, choices=("a", "b")), "one of 'a', 'b'"),
])
def test_describe_says_what_is_allowed(param, described):
    assert param.describe() == described


@pytest.mark.parametrize(("context", "expected"), [
    ("algorithm 'linear'", "unknown hyperparameter 'max_depth' for algorithm 'linear'; allowed: "),
    ("", "unknown hyperparameter 'max_depth'; allowed: "),
])
def test_unknown_hyperparameter_message_names_the_context_when_given(context, expected):
    schema = Schema({"alpha": Param(float, 1.0), "C": Param(float, 1.0)})
    with pytest.raises(UserError) as raised:
        schema.parse({"max_depth": "3"}, context=context)
    assert str(raised.value) == expected + "C, alpha"
