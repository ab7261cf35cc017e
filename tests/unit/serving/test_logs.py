"""Log lines: today's text unless JSON is chosen, the request's inference id on every line it causes,
and the id readable by the hooks from their `Invocation`."""

from __future__ import annotations

import io
import json
import logging
import sys

import numpy as np
import pytest

from sagemaker_byo.serving import logs

ID = "HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID"


class Echo:
    """Not scikit-learn: answers every row with its first cell."""

    n_features_in_ = 4

    def predict(self, data):
        return np.asarray(data, dtype=np.float64)[:, 0]


def record(message: str = "hello %s", args=("world",), level: int = logging.WARNING, **extra) -> logging.LogRecord:
    entry = logging.LogRecord("serve", level, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


@pytest.fixture
def captured():
    """The root logger writing JSON into a buffer, as in the server with SAGEMAKER_CONTAINER_LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


@pytest.mark.parametrize(("environ", "expected"), [
    ({ID: "abc-123"}, "abc-123"),
    ({ID: "abc", "HTTP_X_AMZN_REQUESTID": "req-9"}, "abc"),
    ({"HTTP_X_AMZN_REQUESTID": "req-9"}, "req-9"),
    ({ID: "", "HTTP_X_AMZN_REQUESTID": "req-9"}, "req-9"),
    ({}, None),
    ({ID: "x" * 500}, "x" * logs.MAX_ID),
    ({ID: "line\nbreak"}, "line\\nbreak"),
])
def test_the_inference_id_comes_from_sagemakers_headers_cut_short_and_printable(environ, expected):
    assert logs.inference_id(environ) == expected


def test_text_lines_outside_a_request_are_todays_format():
    line = logs.TextFormatter().format(record())
    assert line.endswith(" WARNING serve: hello world")


def test_text_lines_inside_a_request_end_with_its_inference_id():
    with logs.request_context({ID: "abc-123"}, "/invocations", 0.0):
        line = logs.TextFormatter().format(record())
    assert line.endswith("WARNING serve: hello world inference_id=abc-123")


def test_a_traceback_follows_the_line_that_carries_the_id():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        entry = logging.LogRecord("serve", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    with logs.request_context({ID: "abc-123"}, "/invocations", 0.0):
        text = logs.TextFormatter().format(entry)
    first, rest = text.split("\n", 1)
    assert first.endswith("failed inference_id=abc-123") and rest.startswith("Traceback") and "boom" in rest


def test_json_lines_hold_time_level_logger_message_and_the_request():
    with logs.request_context({ID: "abc-123"}, "/invocations", 0.0):
        entry = json.loads(logs.JsonFormatter().format(record(status=400, duration_s=0.0012)))
    assert entry["time"].endswith("+00:00") and entry["level"] == "WARNING" and entry["logger"] == "serve"
    assert entry["message"] == "hello world"
    assert entry["inference_id"] == "abc-123" and entry["route"] == "/invocations"
    assert entry["status"] == 400 and entry["duration_s"] == 0.0012


def test_a_json_line_outside_a_request_has_no_request_fields():
    entry = json.loads(logs.JsonFormatter().format(record()))
    assert set(entry) == {"time", "level", "logger", "message"}


def test_a_json_traceback_stays_in_one_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        entry = logging.LogRecord("serve", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    text = logs.JsonFormatter().format(entry)
    assert "\n" not in text and "boom" in json.loads(text)["exception"]


def test_the_context_ends_with_the_request():
    with logs.request_context({ID: "abc"}, "/invocations", 0.0):
        assert logs.current().inference_id == "abc"
    assert logs.current() is None


def test_hooks_read_the_inference_id_from_the_invocation(make_client, make_hooks):
    seen = []

    def output_fn(prediction, accept, invocation):
        seen.append(invocation.inference_id)
        return "\n".join(str(p) for p in prediction) + "\n"

    client = make_client(make_hooks(Echo(), output_fn=output_fn))
    assert client.post("/invocations", data="1,2,3,4\n", content_type="text/csv",
                       headers={"X-Amzn-SageMaker-Inference-Id": "id-7"}).status_code == 200
    assert client.post("/invocations", data="1,2,3,4\n", content_type="text/csv").status_code == 200
    assert seen == ["id-7", None]


def test_a_refused_requests_warning_carries_its_id_status_and_duration(make_client, make_hooks, captured):
    client = make_client(make_hooks(Echo()))
    answer = client.post("/invocations", data="1,2\n", content_type="text/csv",
                         headers={"X-Amzn-SageMaker-Inference-Id": "id-400"})
    assert answer.status_code == 400
    [warning] = [e for e in captured() if e.get("inference_id") == "id-400"]
    assert warning["level"] == "WARNING" and warning["status"] == 400 and warning["route"] == "/invocations"
    assert warning["duration_s"] >= 0


def test_a_hooks_traceback_carries_the_requests_id(make_client, make_hooks, captured):
    def predict_fn(data, model, invocation):
        logging.getLogger("my_model").info("predicting %d rows", len(data))
        raise RuntimeError("a bug in the hook")

    client = make_client(make_hooks(Echo(), predict_fn=predict_fn))
    logging.getLogger("my_model").setLevel(logging.INFO)
    answer = client.post("/invocations", data="1,2,3,4\n", content_type="text/csv",
                         headers={"X-Amzn-SageMaker-Inference-Id": "id-500"})
    assert answer.status_code == 500 and "a bug in the hook" not in answer.text
    lines = [e for e in captured() if e.get("inference_id") == "id-500"]
    assert [e["logger"] for e in lines] == ["my_model", "serve"]
    assert lines[1]["status"] == 500 and "a bug in the hook" in lines[1]["exception"]


def test_nginx_access_lines_follow_the_chosen_format():
    assert logs.nginx_log_format("text").endswith("inference_id=$inference_id'")
    assert logs.nginx_log_format("json").startswith("escape=json '{")
