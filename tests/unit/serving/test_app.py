"""The serving contract: `invoke` as a plain function, then the Flask app through its test client."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sagemaker_byo import contract, settings
from sagemaker_byo.errors import (
    BadRequest,
    HookError,
    ModelNotReady,
    NotAcceptable,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from sagemaker_byo.serving import decoders, encoders
from sagemaker_byo.serving.app import create_app
from sagemaker_byo.serving.invocation import Invocation, probabilities
from sagemaker_byo.serving.pipeline import LoadedModel, input_contract, invoke, load_model

MB = 1024 * 1024
ANSWERS = "text/csv, application/json, application/jsonlines"  # what encoders.ENCODERS writes
READS = ("text/csv, application/json, application/jsonlines, application/x-jsonlines, application/x-npy, "
         "application/x-parquet")


def loaded(model) -> LoadedModel:
    return LoadedModel(model, contract=contract.measure_loaded(model))


def csv_of(rows: np.ndarray) -> bytes:
    return ("\n".join(",".join(map(str, row)) for row in rows.tolist()) + "\n").encode()


@pytest.fixture
def shuffled_rows(iris) -> tuple[np.ndarray, np.ndarray]:
    """Iris rows of every class in a mixed order, and their labels."""
    features, labels = iris
    order = np.random.default_rng(7).permutation(len(features))[:30]
    assert len(set(labels[order])) == 3
    return features[order], labels[order]


# -- invoke: the pipeline without HTTP --------------------------------------------------------

def test_invoke_returns_predictions_equal_to_model_predict(iris_model, shuffled_rows, make_hooks, make_config):
    rows, _ = shuffled_rows
    body, media_type = invoke(make_hooks(iris_model), loaded(iris_model), csv_of(rows),
                              "text/csv", None, make_config())
    assert media_type == "text/csv"
    assert body.decode().splitlines() == iris_model.predict(rows).tolist()


def test_invoke_keeps_rows_in_input_order(iris_model, shuffled_rows, make_hooks, make_config):
    rows, labels = shuffled_rows
    hooks = make_hooks(iris_model)
    forward, _ = invoke(hooks, loaded(iris_model), csv_of(rows), "text/csv", None, make_config())
    backward, _ = invoke(hooks, loaded(iris_model), csv_of(rows[::-1]), "text/csv", None, make_config())
    assert forward.decode().splitlines() == backward.decode().splitlines()[::-1]
    assert forward.decode().splitlines() == labels.tolist()  # a deep tree recalls its training rows


def test_invoke_encodes_a_str_from_output_fn(iris_model, make_hooks, make_config):
    hooks = make_hooks(iris_model, output_fn=lambda prediction, accept, invocation: "|".join(prediction))
    body, _ = invoke(hooks, loaded(iris_model), b"5.1,3.5,1.4,0.2\n", None, None, make_config())
    assert body == "|".join(iris_model.predict([[5.1, 3.5, 1.4, 0.2]])).encode()


def test_invoke_passes_the_negotiated_type_to_output_fn(iris_model, make_hooks, make_config):
    seen = []
    hooks = make_hooks(iris_model, accept_types=("text/csv", "application/json"),
                       output_fn=lambda prediction, accept, invocation: seen.append(accept) or b'["x"]')
    _, media_type = invoke(hooks, loaded(iris_model), b"1,2,3,4\n", "text/csv",
                           "application/json;q=0.9, text/plain", make_config())
    assert seen == ["application/json"] == [media_type]


def test_invoke_hands_the_raw_body_and_content_type_to_input_fn(iris_model, make_hooks, make_config):
    seen = []
    hooks = make_hooks(iris_model, input_fn=lambda data, content_type, invocation: seen.append((data, content_type))
                       or np.zeros((1, 4)))
    invoke(hooks, loaded(iris_model), b"anything", "application/x-custom; v=1", None, make_config())
    assert seen == [(b"anything", "application/x-custom; v=1")]


@pytest.mark.parametrize(("body", "content_type", "accept", "error", "message"), [
    (b"", "text/csv", None, BadRequest, "the request body is empty; send one or more rows"),
    (b"1,2\n", "text/csv", None, BadRequest, "row 1 has 2 values; the model takes 4"),
    (b"1,2,3,x\n", "text/csv", None, BadRequest, "row 1, column 4: 'x' is not a number"),
    (b"<rows/>", "application/xml", None, UnsupportedMediaType, "Content-Type 'application/xml' is not supported"),
    (b"1,2,3,4\n", "text/csv", "application/xml", NotAcceptable, "cannot answer in 'application/xml'"),
    (b"x" * (MB + 1), "text/csv", None, PayloadTooLarge, "the body is larger than the limit of 1 MB"),
])
def test_invoke_raises_an_error_carrying_its_status(
    iris_model, make_hooks, make_config, body, content_type, accept, error, message,
):
    with pytest.raises(error) as raised:
        invoke(make_hooks(iris_model), loaded(iris_model), body, content_type, accept,
               make_config(max_payload_mb=1))
    assert raised.value.message.startswith(message)


def test_invoke_answers_503_while_the_model_is_not_loaded_without_the_load_error(
    iris_model, make_hooks, make_config,
):
    with pytest.raises(ModelNotReady) as raised:
        invoke(make_hooks(iris_model), LoadedModel(error="OSError: gone"), b"1,2,3,4\n", None, None, make_config())
    assert raised.value.status == 503
    assert raised.value.message == "the model is not loaded; the server log says why"


def test_invoke_turns_a_value_error_from_the_model_into_400(iris_model, make_hooks, make_config):
    def predict(data, model, invocation):
        raise ValueError("Input X contains NaN")

    with pytest.raises(BadRequest, match="the model cannot use this input: Input X contains NaN"):
        invoke(make_hooks(iris_model, predict_fn=predict), loaded(iris_model), b"1,2,3,4\n",
               None, None, make_config())


@pytest.mark.parametrize(("shape", "raises"), [((3, 4), False), ((3, 5), True), ((4,), False)])
def test_conform_compares_columns_with_the_model(iris_model, shape, raises):
    data = np.zeros(shape)
    measured = contract.measure_loaded(iris_model)
    if raises:
        with pytest.raises(BadRequest, match="row 1 has 5 values; the model takes 4"):
            contract.conform(data, measured)
    else:
        assert contract.conform(data, measured) is data


def test_conform_ignores_a_model_without_n_features():
    data = np.zeros((2, 9))
    assert contract.conform(data, contract.measure_loaded(object())) is data


def test_input_contract_is_read_from_model_json_when_it_is_there(iris_model):
    saved = contract.InputContract((contract.Column("a", True, False),), True, False, True)
    assert input_contract(iris_model, {"input": saved.as_json()}) == saved


def test_input_contract_is_measured_for_a_model_without_model_json(iris_model):
    assert input_contract(iris_model, None) == contract.measure_loaded(iris_model)


def test_a_damaged_contract_in_model_json_is_measured_instead(iris_model, caplog):
    assert input_contract(iris_model, {"input": {"columns": []}}) == contract.measure_loaded(iris_model)
    assert "ignoring the input contract" in caplog.text


def test_load_model_measures_the_contract(tmp_path, iris_model, make_hooks):
    assert load_model(make_hooks(iris_model), tmp_path).contract == contract.measure_loaded(iris_model)


def test_load_model_reports_the_error_instead_of_raising(tmp_path, caplog, make_hooks):
    def model_fn(model_dir: str):
        raise FileNotFoundError(f"{model_dir}/model.joblib")

    loaded = load_model(make_hooks(None, model_fn=model_fn), tmp_path)
    assert not loaded.ready
    assert loaded.error == f"FileNotFoundError: {tmp_path}/model.joblib"
    assert "could not load the model" in caplog.text


def test_model_fn_gets_the_model_folder_as_a_string(tmp_path, make_hooks):
    seen = []
    loaded = load_model(make_hooks(None, model_fn=lambda model_dir: seen.append(model_dir) or "m"), tmp_path)
    assert loaded.ready and loaded.model == "m"
    assert seen == [str(tmp_path)]


def invoke_with(hooks, model, body: bytes = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", config=None,
                accept=None, attributes=None):
    return invoke(hooks, loaded(model), body, "text/csv", accept, config or settings.serving({}), attributes)


def test_predict_fn_giving_one_answer_fewer_is_a_500_naming_predict_fn(iris_model, make_hooks):
    hooks = make_hooks(iris_model, predict_fn=lambda data, model, invocation: model.predict(data)[:-1])
    with pytest.raises(HookError) as raised:
        invoke_with(hooks, iris_model)
    assert raised.value.status == 500
    assert raised.value.message.startswith("predict_fn gave 1 answers for 2 rows")


def test_predict_fn_giving_one_answer_fewer_is_a_500_in_the_log(make_client, make_hooks, iris_model, caplog):
    client = make_client(make_hooks(iris_model, predict_fn=lambda data, model, invocation: model.predict(data)[:-1]))
    with caplog.at_level(logging.ERROR):
        response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n", content_type="text/csv")
    assert assert_short_text(response, 500).startswith("predict_fn gave 1 answers for 2 rows")
    assert "predict_fn gave 1 answers for 2 rows" in caplog.text


@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_output_fn_writing_fewer_answers_than_rows_is_a_500_naming_output_fn(iris_model, make_hooks, accept):
    def output(prediction, accept, invocation):
        return encoders.encode(prediction[:1], accept)

    with pytest.raises(HookError) as raised:
        invoke_with(make_hooks(iris_model, output_fn=output), iris_model, accept=accept)
    assert raised.value.status == 500
    assert raised.value.message.startswith("output_fn gave 1 answers for 2 rows")


def test_a_blank_line_gets_its_own_answer(iris_model, make_hooks):
    body, _ = invoke_with(make_hooks(iris_model), iris_model, b"5.1,3.5,1.4,0.2\n\n6.7,3.0,5.2,2.3\n")
    expected = iris_model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [np.nan] * 4, [6.7, 3.0, 5.2, 2.3]]))
    assert body.decode().splitlines() == expected.tolist()


@pytest.mark.parametrize("hook", ["input_fn", "predict_fn", "output_fn"])
def test_bad_request_from_any_hook_is_a_400_with_its_message(iris_model, make_hooks, hook):
    hooks = make_hooks(iris_model, **{hook: _raise(BadRequest("send colours, not shapes"))})
    with pytest.raises(BadRequest) as raised:
        invoke_with(hooks, iris_model)
    assert raised.value.status == 400
    assert raised.value.message == "send colours, not shapes"


def test_bad_request_from_a_hook_is_answered_400_over_http(make_client, make_hooks, iris_model):
    client = make_client(make_hooks(iris_model, output_fn=_raise(BadRequest("no labels today"))))
    response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n", content_type="text/csv")
    assert assert_short_text(response, 400) == "no labels today\n"


def test_a_value_error_from_input_fn_is_a_400_saying_the_body_cannot_be_read(iris_model, make_hooks):
    hooks = make_hooks(iris_model, input_fn=_raise(ValueError("bad\n  header")))
    with pytest.raises(BadRequest) as raised:
        invoke_with(hooks, iris_model)
    assert raised.value.message == "the body cannot be read: bad header"


def test_a_value_error_from_output_fn_is_a_500(iris_model, make_hooks):
    hooks = make_hooks(iris_model, output_fn=_raise(ValueError("cannot write")))
    with pytest.raises(ValueError, match="cannot write"):
        invoke_with(hooks, iris_model)


def test_a_custom_input_fn_giving_a_list_of_strings_serves_a_text_model(make_hooks):
    texts = ["good fine great", "bad awful poor", "great good", "poor bad"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, ["pos", "neg", "pos", "neg"])
    hooks = make_hooks(model, input_fn=lambda body, content_type, invocation: body.decode().splitlines())
    body, _ = invoke(hooks, LoadedModel(model, contract=contract.UNKNOWN), b"great\nawful\nfine\n",
                     "text/plain", None, settings.serving({}))
    assert body.decode().splitlines() == model.predict(["great", "awful", "fine"]).tolist()


def test_the_invocation_carries_accept_custom_attributes_and_the_contract(iris_model, make_hooks):
    seen: list[Invocation] = []

    def predict(data, model, invocation):
        seen.append(invocation)
        return probabilities(model, data) if invocation.wants_probabilities else model.predict(data)

    hooks = make_hooks(iris_model, predict_fn=predict)
    body, media_type = invoke_with(hooks, iris_model, accept="application/json",
                                   attributes="output=probabilities, trace=42")
    (invocation,) = seen
    assert invocation.accept == media_type == "application/json"
    assert invocation.custom_attributes == {"output": "probabilities", "trace": "42"}
    assert invocation.wants_probabilities
    assert invocation.content_type == "text/csv"
    assert invocation.contract == contract.measure_loaded(iris_model)
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
    assert [list(p.values()) for p in json.loads(body)["predictions"]] == iris_model.predict_proba(rows).tolist()


def test_predictions_are_wanted_unless_probabilities_are_asked_for(iris_model, make_hooks):
    seen = []
    hooks = make_hooks(iris_model, predict_fn=lambda data, model, invocation: seen.append(
        invocation.wants_probabilities) or model.predict(data))
    invoke_with(hooks, iris_model)
    invoke_with(hooks, iris_model, attributes="output=predictions")
    assert seen == [False, False]


@pytest.mark.parametrize("body", [b"5.1,1e39,1.4,0.2\n", b"-3.5e38,3.0,1.4,0.2\n"])
def test_a_number_too_large_for_the_models_float32_is_a_400_not_an_answer(iris_model, make_hooks, body):
    with pytest.raises(BadRequest) as raised:
        invoke_with(make_hooks(iris_model), iris_model, body)
    assert "too large" in raised.value.message


def test_a_number_a_scaler_overflows_is_a_400_not_an_answer(iris, make_hooks):
    """Finite going in, infinite after scaling: the nearest-neighbours step would find some answer."""
    features, labels = iris
    model = make_pipeline(StandardScaler(), KNeighborsClassifier()).fit(features, labels)
    with pytest.raises(BadRequest) as raised:
        invoke_with(make_hooks(model), model, b"1.7e308,3.5,1.4,0.2\n")  # over 1.8e308 once divided by the 0.83 spread
    assert "infinity" in raised.value.message or "too large" in raised.value.message


def test_scikit_learns_finite_check_stays_on_for_every_request(iris_model, make_hooks):
    """conform cannot make it redundant: 1e39 is finite as float64, not as the tree's float32."""
    seen = []

    def predict(data, model, invocation):
        seen.append(sklearn.get_config()["assume_finite"])
        return model.predict(data)

    conformed = make_hooks(iris_model, predict_fn=predict)
    raw = make_hooks(iris_model, predict_fn=predict,
                     input_fn=lambda body, content_type, invocation: decoders.decode(body, content_type))
    invoke_with(conformed, iris_model)
    invoke_with(raw, iris_model)
    assert seen == [False, False]


# -- the Flask app -----------------------------------------------------------------------------

def assert_short_text(response, status: int) -> str:
    """An error answer: the status, a short one-line plain-text message, never a traceback."""
    text = response.get_data(as_text=True)
    assert response.status_code == status, text
    assert response.mimetype == "text/plain"
    assert "Traceback" not in text and 'File "' not in text
    assert text.endswith("\n") and text.count("\n") == 1
    assert 0 < len(text) < 300
    return text


def test_ping_answers_200_when_the_model_is_loaded(client):
    response = client.get("/ping")
    assert response.status_code == 200


def test_ping_answers_503_when_the_model_could_not_be_loaded_and_the_log_says_why(
    make_client, make_hooks, caplog,
):
    def model_fn(model_dir: str):
        raise FileNotFoundError("model.joblib")

    client = make_client(make_hooks(None, model_fn=model_fn))
    text = assert_short_text(client.get("/ping"), 503)
    assert text == "the model is not loaded; the server log says why\n"
    assert "FileNotFoundError: model.joblib" in caplog.text
    assert_short_text(client.post("/invocations", data=b"1,2,3,4\n", content_type="text/csv"), 503)


def test_invocations_predictions_equal_model_predict_in_input_order(client, iris_model, shuffled_rows):
    rows, _ = shuffled_rows
    response = client.post("/invocations", data=csv_of(rows), content_type="text/csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv"
    assert response.get_data(as_text=True).splitlines() == iris_model.predict(rows).tolist()


@pytest.mark.parametrize("content_type", [
    "text/csv", "text/csv; charset=utf-8", "text/csv;charset=UTF-8", "Text/CSV", "text/csv; charset=latin-1",
])
def test_csv_content_type_with_parameters_is_accepted(client, content_type):
    response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n", content_type=content_type)
    assert response.status_code == 200
    assert response.data == b"setosa\n"


def test_missing_content_type_is_read_as_csv(client):
    response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n")
    assert response.status_code == 200
    assert response.data == b"setosa\n"


@pytest.mark.parametrize("accept", [None, "*/*", "text/*", "text/csv", "application/xml, text/csv;q=0.1"])
def test_acceptable_accept_answers_csv(client, accept):
    headers = {"Accept": accept} if accept else {}
    response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n", content_type="text/csv", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"


@pytest.mark.parametrize(("accept", "message"), [
    ("application/xml", f"cannot answer in 'application/xml'; this model answers in {ANSWERS}\n"),
    ("text/csv;q=0", f"cannot answer in 'text/csv;q=0'; this model answers in {ANSWERS}\n"),
])
def test_unacceptable_accept_returns_406(client, accept, message):
    response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n", content_type="text/csv",
                           headers={"Accept": accept})
    assert assert_short_text(response, 406) == message


@pytest.mark.parametrize("content_type", ["application/xml", "application/octet-stream", "text/plain"])
def test_unsupported_content_type_returns_415(client, content_type):
    response = client.post("/invocations", data=b"[[1, 2, 3, 4]]", content_type=content_type)
    text = assert_short_text(response, 415)
    assert text == f"Content-Type {content_type!r} is not supported; send one of {READS}\n"


@pytest.mark.parametrize(("body", "message"), [
    (b"", "the request body is empty; send one or more rows\n"),
    (b"1,2,3\n", "row 1 has 3 values; the model takes 4\n"),
    (b"1,2,3,4\n5,6\n", "CSV row 2 has 2 values; the model takes 4\n"),
    (b"1,2,3,4,5\n5,6,7,8\n", "CSV row 1 has 5 values; the model takes 4\n"),  # the first row is the odd one
    (b"1,2,three,4\n", "row 1, column 3: 'three' is not a number\n"),
    (b"1,2,inf,4\n", "row 1, column 3 is infinite or too large; send finite numbers\n"),
    (b"1,2,\xff,4\n", "the body is not valid utf-8 text (byte 4)\n"),
])
def test_malformed_body_returns_400_with_a_short_reason(client, body, message):
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert assert_short_text(response, 400) == message


def test_empty_cell_reaches_the_model_as_nan(make_client, make_hooks, iris_model):
    seen = []
    client = make_client(make_hooks(iris_model, predict_fn=lambda data, model, invocation: seen.append(data) or ["ok"]))
    response = client.post("/invocations", data=b"1,2,,4\n", content_type="text/csv")
    assert response.status_code == 200
    np.testing.assert_array_equal(seen[0], [[1, 2, np.nan, 4]])


def test_body_over_the_limit_returns_413(make_client, make_config):
    client = make_client(config=make_config(max_payload_mb=1))
    response = client.post("/invocations", data=b"1,2,3,4\n" * (MB // 8 + 1), content_type="text/csv")
    assert assert_short_text(response, 413) == "the body is larger than the limit of 1 MB\n"


def test_body_at_the_limit_is_served(make_client, make_config):
    client = make_client(config=make_config(max_payload_mb=1))
    body = b"5.1,3.5,1.4,0.2\n" * (MB // 16)
    assert len(body) == MB
    response = client.post("/invocations", data=body, content_type="text/csv")
    assert response.status_code == 200
    assert response.data.count(b"\n") == MB // 16


NO_ROUTE = "no such route; this server answers /ping, /invocations and /execution-parameters, and /metrics\n"


@pytest.mark.parametrize(("method", "path", "status", "message"), [
    ("get", "/nowhere", 404, NO_ROUTE),
    ("post", "/predict", 404, NO_ROUTE),
    ("get", "/invocations", 405, "GET is not allowed on '/invocations'\n"),
    ("post", "/ping", 405, "POST is not allowed on '/ping'\n"),
    ("delete", "/invocations", 405, "DELETE is not allowed on '/invocations'\n"),
])
def test_unknown_route_or_method_answers_with_a_short_message(client, method, path, status, message):
    assert assert_short_text(getattr(client, method)(path), status) == message


def _raise(error: Exception):
    def hook(*args):
        raise error

    return hook


@pytest.mark.parametrize("hook", ["input_fn", "predict_fn", "output_fn"])
def test_unexpected_error_returns_500_without_a_traceback(make_client, iris_model, caplog, make_hooks, hook):
    client = make_client(make_hooks(iris_model, **{hook: _raise(RuntimeError("secret internals"))}))
    with caplog.at_level(logging.ERROR):
        response = client.post("/invocations", data=b"1,2,3,4\n", content_type="text/csv")
    text = assert_short_text(response, 500)
    assert text == "internal error in the inference code; the server log has the details\n"
    assert "secret internals" not in text
    assert "RuntimeError: secret internals" in caplog.text  # the log keeps the traceback


def test_execution_parameters_describe_batch_transform_limits(make_client, make_config):
    client = make_client(config=make_config(workers=3, max_payload_mb=20))
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.data) == {
        "MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 20,
    }


def test_default_accept_must_be_a_type_output_fn_can_produce(iris_model, tmp_path, make_hooks, make_config):
    with pytest.raises(settings.SettingsError, match="SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='application/xml'"):
        create_app(make_hooks(iris_model), make_config(default_accept="application/xml"),
                   settings.paths({settings.BASE_DIR: str(tmp_path)}))


def test_configured_default_accept_answers_requests_without_accept(make_client, iris_model, make_hooks, make_config):
    hooks = make_hooks(iris_model, accept_types=("text/csv", "application/json"),
                       output_fn=lambda prediction, accept, invocation: json.dumps(prediction.tolist()))
    client = make_client(hooks, make_config(default_accept="application/json"))
    response = client.post("/invocations", data=b"5.1,3.5,1.4,0.2\n", content_type="text/csv")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json.loads(response.data) == iris_model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist()


def test_the_model_is_loaded_once_when_the_app_is_created(make_client, iris_model, make_hooks):
    loads = []
    client = make_client(make_hooks(iris_model, model_fn=lambda model_dir: loads.append(1) or iris_model))
    for _ in range(3):
        assert client.post("/invocations", data=b"1,2,3,4\n", content_type="text/csv").status_code == 200
    assert client.get("/ping").status_code == 200
    assert loads == [1]


@pytest.mark.parametrize("multi_model", [False, True])
def test_the_404_names_every_route_of_the_mode_as_nginx_routes_them(make_config, multi_model, tmp_path):
    from sagemaker_byo.serving.supervisor import render_nginx_conf

    config = make_config(multi_model=multi_model)
    rendered = render_nginx_conf(config, tmp_path, tmp_path / "socket")
    routed = set(re.findall(r"location = (/[\w-]+) ", rendered)) - {"/_errors"}
    named = set(re.findall(r"/[\w<>/-]+", config.routes))
    assert routed - {"/invocations"} <= named if multi_model else routed <= named, (routed, config.routes)
    assert "/execution-parameters" in named
