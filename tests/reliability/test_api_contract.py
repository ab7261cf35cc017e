"""The running server (nginx and gunicorn on loopback) against docs/openapi.yaml.

Two halves: schemathesis generates requests from the description (a bounded number per
operation, positive and negative) and checks that every answer is documented (status, media
type, body schema) and never a server error; and hand-written requests reach every documented
status and media type the server can be made to answer without a fault, to show that the
description is not just permissive but what the server really does.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from support import REPO, Server, copy_test_dir, have_nginx, require, require_module

# Hypothesis caches Unicode tables in ./.hypothesis unless told otherwise: keep the work tree clean.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", "/tmp/sagemaker-byo-hypothesis")
schemathesis = require_module("schemathesis", "schemathesis is not installed (requirements-dev.txt)")
yaml = require_module("yaml", "PyYAML is not installed (requirements-dev.txt)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

SPEC = REPO / "docs" / "openapi.yaml"
MULTI_MODEL_SPEC = REPO / "docs" / "openapi-multimodel.yaml"
ROUTES = {"/ping": "get", "/invocations": "post", "/execution-parameters": "get", "/metrics": "get"}
EXAMPLES_PER_OPERATION = 40  # x 4 (operation, mode) pairs below: 160 requests, a few seconds
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
ROW = "5.1,3.5,1.4,0.2"


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else json.dumps(value).encode()


# The description's request types that schemathesis has no serializer for: send the generated
# value as it is (text as UTF-8), so the server sees what a client of that type would send.
for _media_type in ("text/csv", "application/jsonlines", "application/x-npy", "application/x-parquet"):
    schemathesis.serializer(_media_type)(lambda _ctx, value: _as_bytes(value))


# -- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC.read_text())


@pytest.fixture(scope="module")
def server(trained_dir: Path):
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    started = Server(trained_dir).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def api_schema():
    return schemathesis.openapi.from_path(SPEC)


def documented(spec: dict, path: str, method: str) -> dict[str, set[str]]:
    """Status code -> the media types the description allows for it (empty: no body)."""
    responses = spec["paths"][path][method]["responses"]
    result = {}
    for status, response in responses.items():
        if "$ref" in response:
            response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
        result[status] = set(response.get("content", {}))
    return result


def assert_documented(spec: dict, path: str, method: str, response: requests.Response) -> None:
    allowed = documented(spec, path, method)
    status = str(response.status_code)
    assert status in allowed, f"{method.upper()} {path} answered undocumented {status}: {response.text!r}"
    if allowed[status]:
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        assert media_type in allowed[status], f"{status} in {media_type!r}, documented {allowed[status]}"
    else:
        assert response.content == b"", response.content
    if response.status_code >= 400:
        assert_error_line(response)


def assert_error_line(response: requests.Response) -> None:
    text = response.text
    assert response.headers["Content-Type"].startswith("text/plain"), response.headers
    assert 0 < len(text) < 300 and text.endswith("\n") and text.count("\n") == 1, text
    assert "Traceback" not in text and 'File "' not in text, text


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=array.dtype.hasobject)
    return buffer.getvalue()


def parquet(columns: dict) -> bytes:
    """A Parquet file of these columns (the fixture model's are column_2 ... column_5)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue()


IRIS_COLUMNS = {"column_2": [5.1, 6.7], "column_3": [3.5, 3.0], "column_4": [1.4, 5.2], "column_5": [0.2, 2.3]}


# -- the description itself ------------------------------------------------------------------

def test_the_description_is_openapi_3_with_the_four_routes(spec: dict, api_schema):
    assert spec["openapi"].startswith("3.")
    assert {path: set(item) for path, item in spec["paths"].items()} == {
        path: {method} for path, method in ROUTES.items()
    }
    labels = {operation.ok().label for operation in api_schema.get_all_operations()}
    assert labels == {f"{method.upper()} {path}" for path, method in ROUTES.items()}


def test_the_description_documents_every_status_of_the_serving_page(spec: dict):
    invocations = documented(spec, "/invocations", "post")
    assert set(invocations) == {"200", "400", "406", "413", "415", "500", "502", "503", "504"}
    assert invocations["200"] == {"text/csv", "application/json", "application/jsonlines"}
    assert all(types == {"text/plain"} for status, types in invocations.items() if status != "200")
    request_types = set(spec["paths"]["/invocations"]["post"]["requestBody"]["content"])
    assert request_types == {"text/csv", "application/json", "application/jsonlines", "application/x-npy",
                             "application/x-parquet"}
    assert documented(spec, "/ping", "get") == {"200": set(), "503": {"text/plain"}}
    multi_model = yaml.safe_load(MULTI_MODEL_SPEC.read_text())
    for status, what in re.findall(r"^\| (\d{3}) \| ([^|]*)\|", (REPO / "docs/serving.md").read_text(), re.MULTILINE):
        if what.startswith("multi-model:"):  # the routes of SAGEMAKER_MULTI_MODEL=true
            assert any(status in documented(multi_model, path, method)
                       for path, item in multi_model["paths"].items() for method in item if method != "parameters"), \
                f"docs/serving.md's multi-model status {status} is not in {MULTI_MODEL_SPEC.name}"
        elif status not in ("404", "405"):  # routes and methods the description does not list
            assert status in invocations, f"docs/serving.md's status {status} is not in the description"


def test_the_multi_model_description_documents_the_contracts_routes_and_statuses():
    multi_model = yaml.safe_load(MULTI_MODEL_SPEC.read_text())
    routes = {path: {m for m in item if m != "parameters"} for path, item in multi_model["paths"].items()}
    assert routes == {"/models": {"post", "get"}, "/models/{name}": {"get", "delete"},
                      "/models/{name}/invoke": {"post"}}
    load = documented(multi_model, "/models", "post")
    assert {"200", "404", "409", "507"} <= set(load) and load["507"] == {"text/plain"}
    invoke = documented(multi_model, "/models/{name}/invoke", "post")
    single = documented(yaml.safe_load(SPEC.read_text()), "/invocations", "post")
    assert set(single) - {"502"} <= set(invoke)  # the same statuses as /invocations (502 is nginx's)
    assert invoke["200"] == single["200"]


# -- generated requests (schemathesis) -------------------------------------------------------

# Negative cases (values that break the description) only where there is something to break.
GENERATED = [("/ping", GenerationMode.POSITIVE), ("/execution-parameters", GenerationMode.POSITIVE),
             ("/metrics", GenerationMode.POSITIVE),
             ("/invocations", GenerationMode.POSITIVE), ("/invocations", GenerationMode.NEGATIVE)]


@pytest.mark.parametrize(("path", "mode"), GENERATED, ids=[f"{p}-{m.value}" for p, m in GENERATED])
def test_generated_requests_get_documented_answers(api_schema, server: Server, path: str, mode: GenerationMode):
    operation = api_schema[path][ROUTES[path].upper()]
    session = requests.Session()
    started = time.monotonic()
    sent = []

    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(base_url=server.url, session=session, timeout=10)
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            assert len(response.text) < 300, response.text

    check()
    assert sent, "schemathesis generated no request"
    assert time.monotonic() - started < 60
    assert server.process.poll() is None


# -- every documented answer, reached by hand -------------------------------------------------

ACCEPTS = ["text/csv", "application/json", "application/jsonlines"]
BODIES = {
    "text/csv": f"{ROW}\n6.7,3.0,5.2,2.3\n".encode(),
    "text/csv; charset=utf-8": f"{ROW}\n6.7,3.0,5.2,2.3\n".encode(),
    "application/json": json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode(),
    "application/jsonlines": b"[5.1, 3.5, 1.4, 0.2]\n[6.7, 3.0, 5.2, 2.3]\n",
    "application/x-npy": npy(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])),
    "application/x-parquet": parquet(IRIS_COLUMNS),
}


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("content_type", BODIES)
def test_every_request_type_is_answered_in_every_accept_type(spec: dict, server: Server,
                                                              content_type: str, accept: str):
    response = server.invoke(BODIES[content_type], content_type, Accept=accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == accept
    assert_documented(spec, "/invocations", "post", response)
    if accept == "application/json":
        assert response.json() == {"predictions": ["setosa", "virginica"]}
    elif accept == "application/jsonlines":
        assert [json.loads(line) for line in response.text.splitlines()] == ["setosa", "virginica"]
    else:
        assert response.text == "setosa\nvirginica\n"


def test_probabilities_are_answered_as_documented(spec: dict, server: Server):
    response = server.invoke(BODIES["text/csv"], Accept="application/json",
                             **{"X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"})
    assert response.status_code == 200, response.text
    assert_documented(spec, "/invocations", "post", response)
    rows = response.json()["predictions"]
    assert [set(row) for row in rows] == [{"setosa", "versicolor", "virginica"}] * 2
    assert all(abs(sum(row.values()) - 1) < 1e-9 for row in rows)


ERRORS = {
    "malformed": (400, b"5.1,abc\n", "text/csv", {}),
    "bad_custom_attribute": (400, ROW.encode(), "text/csv", {"X-Amzn-SageMaker-Custom-Attributes": "output=x"}),
    "object_npy": (400, npy(np.array([[1, "a", None, 2]], dtype=object)), "application/x-npy", {}),
    "not_parquet": (400, ROW.encode(), "application/x-parquet", {}),
    "parquet_timestamps": (400, parquet({**IRIS_COLUMNS, "column_5": np.array([1, 2], "datetime64[s]")}),
                           "application/x-parquet", {}),
    "unacceptable": (406, ROW.encode(), "text/csv", {"Accept": "application/xml"}),
    "too_large": (413, (ROW + "\n").encode() * (6 * 1024 * 1024 // 16 + 1), "text/csv", {}),
    "unsupported": (415, ROW.encode(), "application/xml", {}),
}


@pytest.mark.parametrize(("status", "body", "content_type", "headers"), ERRORS.values(), ids=ERRORS)
def test_documented_errors_are_one_short_text_line(spec: dict, server: Server, status: int, body: bytes,
                                                   content_type: str, headers: dict):
    response = server.invoke(body, content_type, **headers)
    assert response.status_code == status, response.text
    assert_documented(spec, "/invocations", "post", response)


def test_ping_and_execution_parameters_match_the_description(spec: dict, server: Server):
    ping = requests.get(f"{server.url}/ping", timeout=2)
    assert ping.status_code == 200
    assert_documented(spec, "/ping", "get", ping)

    parameters = requests.get(f"{server.url}/execution-parameters", timeout=2)
    assert_documented(spec, "/execution-parameters", "get", parameters)
    schema = spec["components"]["schemas"]["ExecutionParameters"]
    body = parameters.json()
    assert set(body) == set(schema["required"]) == set(schema["properties"])
    assert body["BatchStrategy"] in schema["properties"]["BatchStrategy"]["enum"]
    assert body == {"MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_metrics_match_the_description_and_parse_as_prometheus_text(spec: dict, server: Server, serve):
    response = requests.get(f"{server.url}/metrics", timeout=2)
    assert response.status_code == 200
    assert_documented(spec, "/metrics", "get", response)
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert "sagemaker_byo_requests" in names
    off = serve(base_dir=server.base_dir, env={"MODEL_SERVER_METRICS": "false"})
    response = requests.get(f"{off.url}/metrics", timeout=2)
    assert response.status_code == 404
    assert_documented(spec, "/metrics", "get", response)
    assert_error_line(response)


def test_a_server_without_a_model_answers_503_as_documented(spec: dict, serve, tmp_path: Path):
    server = serve(base_dir=copy_test_dir(tmp_path / "ml"), wait_ready=False)  # model/ is empty
    server.wait_for_ping(503)
    assert_documented(spec, "/ping", "get", requests.get(f"{server.url}/ping", timeout=2))
    for content_type, body in BODIES.items():
        response = server.invoke(body, content_type)
        assert response.status_code == 503, response.text
        assert_documented(spec, "/invocations", "post", response)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/openapi.yaml"), ("POST", "/invocation"), ("GET", "/ping/"),
    ("POST", "/invocations/extra"), ("GET", "/execution_parameters"), ("PUT", "/models/x"),
    ("GET", "/../etc/passwd"),
])
def test_undocumented_routes_answer_404(spec: dict, server: Server, method: str, path: str):
    assert path.split("?")[0] not in spec["paths"]
    response = requests.request(method, f"{server.url}{path}", timeout=2)
    assert response.status_code == 404, response.text
    assert_error_line(response)
    assert "root:" not in response.text


@pytest.mark.parametrize(("path", "headers"), [
    ("/%2e%2e/etc/passwd", {}),  # above the root
    ("/invocations", {"X-Padding": "x" * 20_000}),  # over large_client_header_buffers
], ids=["path_above_root", "header_too_large"])
def test_requests_nginx_refuses_get_400_as_one_text_line(server: Server, path: str, headers: dict):
    response = requests.post(f"{server.url}{path}", data=ROW, headers=headers, timeout=2)
    assert response.status_code == 400, response.text
    assert_error_line(response)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/invocations"), ("PUT", "/invocations"), ("DELETE", "/invocations"),
    ("POST", "/execution-parameters"),
    ("POST", "/ping"), ("DELETE", "/ping"), ("POST", "/metrics"), ("PUT", "/metrics"),
])
def test_undocumented_methods_answer_405(spec: dict, server: Server, method: str, path: str):
    assert method.lower() not in spec["paths"][path]
    response = requests.request(method, f"{server.url}{path}", data=b"", timeout=2)
    assert response.status_code == 405, response.text
    assert_error_line(response)
