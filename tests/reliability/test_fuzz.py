"""Property-based fuzzing of /invocations on the real serve stack (nginx, gunicorn) on loopback.

Whatever a client sends, in any content type or none, the answer is a prediction (2xx) or a
refusal (4xx) in one short line that reveals nothing of the server (no traceback, no path);
never a 5xx, and no worker dies. One server for the whole module; each property is bounded by
its example count and by a wall-clock budget; the last test checks the server afterwards.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import time
import warnings
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests

from procs import gunicorn_workers, worker_boots, worker_pids
from support import PAYLOAD, REPO, Server, have_nginx, require, require_module

# Hypothesis caches Unicode tables in ./.hypothesis unless told otherwise: keep the work tree clean.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", "/tmp/sagemaker-byo-hypothesis")
hypothesis = require_module("hypothesis", "hypothesis is not installed (requirements-dev.txt)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

BUDGET_SECONDS = 60  # for all the properties together; they take ~15 s on 2 cores
MIN_CASES = 300  # the properties below ask for 360 examples; fewer means the budget ran out
CASES_FILE = Path("/tmp/sagemaker-byo-fuzz-cases.txt")
FUZZ = settings(
    deadline=None, database=None, print_blob=True,
    derandomize=os.environ.get("CI") == "true",  # CI reproduces; a developer's run explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CONTENT_TYPES = ["text/csv", "application/json", "application/jsonlines", "application/x-jsonlines",
                 "application/x-npy", "application/x-parquet"]
ACCEPTS = ["text/csv", "application/json", "application/jsonlines"]
ROW = b"5.1,3.5,1.4,0.2\n"

cases: Counter[str] = Counter()  # property name -> requests sent
statuses: Counter[int] = Counter()
budget = {"deadline": math.inf}


# -- the server and the property every answer must have ---------------------------------------

@pytest.fixture(scope="module")
def fuzz_server(trained_dir: Path):
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    server = Server(trained_dir).start()
    server.session = requests.Session()
    server.workers = gunicorn_workers(server, 2)
    server.boots = worker_boots(server)
    budget["deadline"] = time.monotonic() + BUDGET_SECONDS
    yield server
    server.stop()


def secrets_of(server: Server) -> list[str]:
    """What an answer must never show: where the server, the model and the libraries live."""
    return [str(server.base_dir), str(REPO), "site-packages", "/opt/ml", "Traceback", 'File "']


def send(server: Server, name: str, body: bytes, content_type: str | None = "text/csv",
         accept: str | None = None, attributes: str | None = None) -> requests.Response | None:
    """POST one fuzzed body and check the answer; None once the time budget is spent."""
    if time.monotonic() > budget["deadline"]:
        return None
    headers = {"Content-Type": content_type, "Accept": accept,  # None: the header is not sent
               "X-Amzn-SageMaker-Custom-Attributes": attributes}
    response = server.session.post(f"{server.url}/invocations", data=body, headers=headers, timeout=10)
    cases[name] += 1
    statuses[response.status_code] += 1
    sent = body + b" ".join(h.encode("latin-1", "replace") for h in headers.values() if h)
    assert 200 <= response.status_code < 500, (response.status_code, response.text, body[:200], headers)
    if response.status_code >= 400:
        text = response.text
        assert response.headers["Content-Type"].startswith("text/plain"), response.headers
        assert 0 < len(text) < 300 and text.count("\n") == 1, (text, body[:200], headers)
        for secret in secrets_of(server):
            assert secret.encode() in sent or secret not in text, (secret, text)
    else:
        assert response.headers["Content-Type"] in ACCEPTS
        assert response.content.endswith(b"\n") or response.headers["Content-Type"] == "application/json"
    return response


# -- strategies -------------------------------------------------------------------------------

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),  # beyond float range
    st.sampled_from([0, -0.0, 1e308, 5e-324, 2**63, -(2**64)]),
)
cell_text = st.one_of(
    numbers.map(repr),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-Infinity", "1e999", "true", "None", "null", "0x10",
                     "1_0", '"1"', '"', "''", "\t", "\x00", "\ufeff1", "١٢", "setosa", "5.1.2", "--1"]),
    st.text(max_size=12),
)


@st.composite
def csv_bodies(draw) -> bytes:
    width = draw(st.integers(1, 6))
    rows = draw(st.lists(
        st.lists(cell_text, min_size=max(0, width - 1), max_size=width + 1),  # mostly 4 wide, some ragged
        min_size=0, max_size=8,
    ))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n", "\n \n"]))
    text = newline.join(",".join(row) for row in rows) + draw(st.sampled_from(["", "\n", "\n\n"]))
    body = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # past 2 KB: the pandas parser instead of the small-body path (and past 48 KB)
        body = ROW * draw(st.one_of(st.integers(130, 400), st.integers(3100, 3300))) + body
    if draw(st.integers(0, 4)) == 0:  # invalid UTF-8 somewhere
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + body[at:]
    return body


json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=10))
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=5),
                               st.dictionaries(st.sampled_from(["instances", "inputs", "features", "columns",
                                                                "data", "column_2", "column_3", "column_4",
                                                                "column_5", "x"]), children, max_size=4)),
    max_leaves=25,
)


@st.composite
def json_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["value", "rows", "wrapped", "records", "split", "nested", "broken"]))
    rows = st.lists(st.lists(json_scalars, min_size=3, max_size=5), min_size=1, max_size=4)
    if kind == "value":
        value = draw(json_values)
    elif kind == "rows":
        value = draw(rows)
    elif kind == "wrapped":
        value = {draw(st.sampled_from(["instances", "inputs"])): draw(rows)}
    elif kind == "records":
        value = draw(st.lists(st.dictionaries(
            st.sampled_from(["column_2", "column_3", "column_4", "column_5", "other"]), json_scalars,
            min_size=3, max_size=5), min_size=1, max_size=3))
    elif kind == "split":
        value = {"columns": draw(st.lists(st.sampled_from(["column_2", "column_3", "column_4", "column_5", 1]),
                                          max_size=5)),
                 "data": draw(st.one_of(rows, json_values))}
    elif kind == "nested":
        depth = draw(st.integers(100, 200_000))  # past Python's recursion limit too
        return b"[" * depth + draw(st.sampled_from([b"1", b"", b"1,2"])) + b"]" * draw(st.integers(0, depth))
    else:
        text = json.dumps(draw(json_values))
        return text[: draw(st.integers(0, len(text)))].encode() + draw(st.binary(max_size=8))
    return json.dumps(value).encode()  # NaN, Infinity and -Infinity included, as Python writes them


@st.composite
def jsonlines_bodies(draw) -> bytes:
    lines = draw(st.lists(st.one_of(
        json_bodies(),
        st.just(b""), st.just(b"   "),
        st.lists(json_scalars, min_size=4, max_size=4).map(lambda row: json.dumps(row).encode()),
    ), min_size=0, max_size=6))
    return draw(st.sampled_from([b"\n", b"\r\n"])).join(lines)


NPY_DTYPES = ["<f8", "<f4", ">f8", "<i8", "|u1", "|b1", "<f2", "<c16", "<U3", "|S2", "|O", "<M8[s]", "|V4"]


@st.composite
def npy_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["array", "object", "header", "truncated", "noise"]))
    if kind == "array":
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
        dtype = np.dtype(draw(st.sampled_from([d for d in NPY_DTYPES if d != "|O"])))
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        array = np.frombuffer(draw(st.binary(min_size=size, max_size=size)), dtype=dtype).reshape(shape)
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()
    if kind == "object":  # a pickle inside: must be refused, never loaded
        array = np.array(draw(st.lists(st.lists(json_scalars, min_size=4, max_size=4), min_size=1, max_size=3)),
                         dtype=object)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=True)
        return buffer.getvalue()
    if kind == "header":  # a hand-written header: lying shapes, odd dtypes, bad Python literals
        header = "{{'descr': {!r}, 'fortran_order': {}, 'shape': {}, }}".format(
            draw(st.sampled_from([*NPY_DTYPES, "<f8'", "x"])), draw(st.sampled_from(["False", "True", "1"])),
            # An unclosed bracket, such as "(1, 4", is a known bug: test_npy_header_with_an_unclosed_...
            draw(st.sampled_from(["(1, 4)", "(4,)", "(10**9, 10**9)", "(-1, 4)", "()", "(2, 2, 2)", "[1, 4]",
                                  "__import__('os')"])))
        header = header.encode("latin-1") + b" " * draw(st.integers(0, 20)) + b"\n"
        version = draw(st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x09"]))
        length = struct.pack("<H" if version == b"\x01\x00" else "<I", len(header))
        return b"\x93NUMPY" + version + length + header + draw(st.binary(max_size=64))
    if kind == "truncated":
        buffer = io.BytesIO()
        np.save(buffer, np.arange(8, dtype="<f8").reshape(2, 4))
        whole = buffer.getvalue()
        return whole[: draw(st.integers(0, len(whole) - 1))]
    return b"\x93NUMPY" + draw(st.binary(max_size=200))


# The fixture model's columns (header-less CSV: column 1 was the target), and one it does not know.
PARQUET_NAMES = ["column_2", "column_3", "column_4", "column_5", "other"]


def parquet_column(kind: str, values: list):
    """An Arrow column of `kind` made from fuzzed values (numbers, text or None)."""
    import pyarrow as pa

    numbers = [v if isinstance(v, float) or v is None else float(len(str(v))) for v in values]
    text = [None if v is None else str(v) for v in values]
    if kind == "float64":
        return pa.array(numbers, pa.float64())
    if kind == "int64":  # nullable
        return pa.array([None if v is None or not math.isfinite(v) else int(max(-2**62, min(v, 2**62)))
                         for v in numbers], pa.int64())
    if kind == "bool":
        return pa.array([None if v is None else bool(v) for v in numbers], pa.bool_())
    if kind == "string":
        return pa.array(text, pa.string())
    if kind == "category":
        return pa.array(text, pa.string()).dictionary_encode()
    if kind == "null":
        return pa.nulls(len(values))
    if kind == "timestamp":
        return pa.array([None if v is None else 0 for v in values], pa.timestamp("ms"))
    if kind == "list":
        return pa.array([None if v is None else [v] for v in numbers])
    if kind == "struct":
        return pa.array([None if v is None else {"a": v} for v in numbers])
    return pa.array([None if v is None else v.encode("utf-8", "surrogatepass") for v in text], pa.binary())


PARQUET_KINDS = ["float64", "int64", "bool", "string", "category", "null", "timestamp", "list", "struct", "binary"]


@st.composite
def parquet_bodies(draw) -> bytes:
    """Parquet files of odd types and names, truncated ones, and ones with bytes changed inside."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = draw(st.integers(0, 6))
    cell = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
    names = draw(st.one_of(st.permutations(PARQUET_NAMES[:4]),  # the model's columns, in any order
                           st.lists(st.sampled_from(PARQUET_NAMES), min_size=0, max_size=6)))
    kinds = [draw(st.sampled_from(PARQUET_KINDS[:6] * 3 + PARQUET_KINDS)) for _ in names]  # mostly readable
    table = pa.Table.from_arrays(
        [parquet_column(kind, draw(st.lists(cell, min_size=rows, max_size=rows))) for kind in kinds], names=names)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=draw(st.sampled_from(["snappy", "zstd", "gzip", "none"])))
    whole = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "none", "truncated", "changed", "noise"]))
    if damage == "truncated":
        return whole[: draw(st.integers(0, len(whole) - 1))]
    if damage == "changed":  # the magic bytes kept, so pyarrow parses what lies between
        changed = bytearray(whole)
        for _ in range(draw(st.integers(1, 8))):
            changed[draw(st.integers(4, len(whole) - 5))] = draw(st.integers(0, 255))
        return bytes(changed)
    if damage == "noise":
        return b"PAR1" + draw(st.binary(max_size=200)) + b"PAR1"
    return whole


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=40).map(str.strip)  # longer ones show a known bug: test_long_header_values_...
content_types = st.one_of(
    st.none(),
    st.sampled_from(CONTENT_TYPES),
    st.sampled_from(CONTENT_TYPES).map(lambda t: t + "; charset=utf-8"),
    st.sampled_from(["TEXT/CSV", "text/csv; charset=latin-1", "text/csv; charset=utf-16", "text/csv;charset=nope",
                     "application/octet-stream", "text/plain", "application/x-www-form-urlencoded",
                     "multipart/form-data; boundary=x", "*/*", ";", "text/csv; q=0"]),
    header_text,
)
accepts = st.one_of(
    st.none(),
    st.sampled_from([*ACCEPTS, "*/*", "text/*", "application/*;q=0.5, text/csv;q=0.1", "application/xml",
                     "text/csv;q=0", "*/*;q=abc", ",,,", "application/json;q=2"]),
    header_text,
)
attributes = st.one_of(st.none(), st.sampled_from(["output=probabilities", "output=predictions", "output=",
                                                   "output=x", "a=b; output=probabilities", "="]), header_text)


# -- the properties ---------------------------------------------------------------------------

@settings(FUZZ, max_examples=60)
@given(body=csv_bodies(), accept=accepts)
def test_fuzzed_csv_is_answered_or_refused_in_a_short_line(fuzz_server: Server, body: bytes, accept):
    send(fuzz_server, "csv", body, "text/csv", accept)


@settings(FUZZ, max_examples=60)
@given(body=json_bodies(), accept=accepts, attributes=attributes)
def test_fuzzed_json_is_answered_or_refused_in_a_short_line(fuzz_server: Server, body: bytes, accept, attributes):
    send(fuzz_server, "json", body, "application/json", accept, attributes)


@settings(FUZZ, max_examples=50)
@given(body=jsonlines_bodies(), content_type=st.sampled_from(["application/jsonlines", "application/x-jsonlines"]))
def test_fuzzed_json_lines_are_answered_or_refused_in_a_short_line(fuzz_server: Server, body: bytes,
                                                                   content_type: str):
    send(fuzz_server, "jsonlines", body, content_type)


@settings(FUZZ, max_examples=60)
@given(body=npy_bodies())
def test_fuzzed_npy_is_answered_or_refused_in_a_short_line(fuzz_server: Server, body: bytes):
    send(fuzz_server, "npy", body, "application/x-npy")


@settings(FUZZ, max_examples=60)
@given(body=parquet_bodies(), accept=accepts)
def test_fuzzed_parquet_is_answered_or_refused_in_a_short_line(fuzz_server: Server, body: bytes, accept):
    send(fuzz_server, "parquet", body, "application/x-parquet", accept)


@settings(FUZZ, max_examples=90)
@given(body=st.one_of(st.binary(max_size=512), csv_bodies(), json_bodies(), npy_bodies(), parquet_bodies()),
       content_type=content_types, accept=accepts, attributes=attributes)
def test_any_body_with_any_headers_is_answered_or_refused_in_a_short_line(
        fuzz_server: Server, body: bytes, content_type, accept, attributes):
    send(fuzz_server, "any", body, content_type, accept, attributes)


finite_rows = st.lists(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=4, max_size=4),
                       min_size=1, max_size=20)


def encoded(rows: list[list[float]], content_type: str) -> bytes:
    if content_type == "text/csv":
        return "".join(",".join(map(repr, row)) + "\n" for row in rows).encode()
    if content_type == "application/json":
        return json.dumps({"instances": rows}).encode()
    if content_type == "application/jsonlines":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if content_type == "application/x-parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        columns = np.array(rows, dtype=np.float64).T
        pq.write_table(pa.table(dict(zip(PARQUET_NAMES, columns, strict=False))), buffer)
        return buffer.getvalue()
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows, dtype=np.float64))
    return buffer.getvalue()


def own_predict_raises(server: Server, rows: list[list[float]], probabilities: bool) -> bool:
    """Whether the served model's own predict (or predict_proba) refuses these rows: a trained
    model is not bound to answer every finite number (a distance-weighted KNN refuses huge ones)."""
    model = joblib.load(server.base_dir / "model" / "model.joblib")
    method = getattr(model, "predict_proba" if probabilities else "predict", None)
    if method is None:
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            method(np.array(rows, dtype=np.float64))
        except Exception:  # noqa: BLE001 - any refusal
            return True
    return False


@settings(FUZZ, max_examples=40)
@given(rows=finite_rows, content_type=st.sampled_from(["text/csv", "application/json", "application/jsonlines",
                                                       "application/x-npy", "application/x-parquet"]),
       accept=st.sampled_from(ACCEPTS), attributes=st.sampled_from([None, "output=probabilities"]))
def test_well_formed_rows_of_any_finite_numbers_get_one_prediction_each(
        fuzz_server: Server, rows, content_type: str, accept: str, attributes):
    response = send(fuzz_server, "finite", encoded(rows, content_type), content_type, accept, attributes)
    if response is None:
        return
    if response.status_code == 400:  # only where the model's own predict refuses these rows too
        assert own_predict_raises(fuzz_server, rows, attributes == "output=probabilities"), response.text
        return
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == accept
    if accept == "application/json":
        assert len(response.json()["predictions"]) == len(rows)
    else:
        assert len(response.text.splitlines()) == len(rows)


# -- known gaps -------------------------------------------------------------------------------

LONG = "x" * 2000
ECHOED = {
    "accept": ({"Accept": f"application/{LONG}"}, "/invocations",
               "sagemaker_byo/serving/media.py negotiate(): NotAcceptable quotes the whole Accept header"),
    "content_type": ({"Content-Type": f"application/{LONG}"}, "/invocations",
                     "sagemaker_byo/serving/decoders.py decode(): UnsupportedMediaType quotes the whole media type"),
    "charset": ({"Content-Type": f"text/csv; charset={LONG}"}, "/invocations",
                "sagemaker_byo/serving/decoders.py _text(): 'unknown charset' quotes the whole charset"),
    "custom_attributes": ({"X-Amzn-SageMaker-Custom-Attributes": f"output={LONG}"}, "/invocations",
                          "sagemaker_byo/serving/invocation.py requested_output() quotes the whole output value"),
    "path": ({}, f"/{LONG}", "algo/nginx.conf 'location /' returns 'no route $uri' with the whole path"),
}


@pytest.mark.parametrize(("headers", "path"), [
    pytest.param(headers, path, id=name)
    for name, (headers, path, _where) in ECHOED.items()
])
def test_long_header_values_and_paths_still_get_a_short_error(fuzz_server: Server, headers: dict, path: str):
    response = fuzz_server.session.post(f"{fuzz_server.url}{path}", data=ROW, headers=headers, timeout=10)
    assert 400 <= response.status_code < 500, response.text
    assert len(response.text) < 300, f"{len(response.text)} characters: {response.text[:120]}..."


# -- afterwards -------------------------------------------------------------------------------

PROPERTIES = {"csv", "json", "jsonlines", "npy", "parquet", "any", "finite"}


def test_after_fuzzing_the_same_workers_give_the_right_answer(fuzz_server: Server, trained_dir: Path, capsys):
    import joblib

    total = sum(cases.values())
    CASES_FILE.write_text(f"{total}\n{json.dumps({'cases': cases, 'statuses': statuses})}\n")
    with capsys.disabled():
        print(f"\nfuzz: {total} cases sent ({', '.join(f'{k} {v}' for k, v in sorted(cases.items()))}); "
              f"answers {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))}")
    if set(cases) >= PROPERTIES:  # every property ran (not a -k selection)
        assert total >= MIN_CASES, f"only {total} fuzz cases ran within {BUDGET_SECONDS}s"

    model = joblib.load(trained_dir / "model" / "model.joblib")
    rows = np.loadtxt(PAYLOAD, delimiter=",", ndmin=2)
    for _ in range(4):  # both workers, whichever nginx picks
        response = fuzz_server.session.post(f"{fuzz_server.url}/invocations", data=PAYLOAD.read_bytes(),
                                            headers={"Content-Type": "text/csv"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.text.splitlines() == [str(label) for label in model.predict(rows)]
    assert worker_pids(fuzz_server) == fuzz_server.workers, "a worker was replaced while fuzzing"
    assert worker_boots(fuzz_server) == fuzz_server.boots, "gunicorn booted workers while fuzzing"
    assert fuzz_server.process.poll() is None
    assert "Traceback" not in fuzz_server.log(), fuzz_server.log()[-3000:]


# Last: the 500 it gets makes the server log a traceback, which the test above looks for.
def test_npy_header_with_an_unclosed_bracket_gets_400(fuzz_server: Server):
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (1, 4, }\n"
    body = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(32)
    response = fuzz_server.session.post(f"{fuzz_server.url}/invocations", data=body,
                                        headers={"Content-Type": "application/x-npy"}, timeout=10)
    assert response.status_code == 400, response.text
