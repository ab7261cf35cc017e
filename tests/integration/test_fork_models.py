"""The plumbing serves models we did not write, through the real `algo/serve` (nginx, gunicorn,
2 workers): a tree that takes missing values, a scaler + KNN pipeline that refuses them, a TF-IDF
text pipeline, and a non-scikit-learn object with `predict`, each with the input contract that
training writes to model.json and, as a model trained elsewhere, with none (measured at load).

The property: for random requests in every content type (Parquet included, its columns named as
the model knows them), the server answers exactly what the model's own `predict` answers on the
same rows, or a 400 where `predict` raises on them; never a 500, never a 200 that `predict` would
not give. And every row gets one answer, in order.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sagemaker_byo import contract
from support import Server, have_nginx, require

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serve unpickles `fixture_models.WeightedVote`; pickle it under that name
import fixture_models  # noqa: E402

NUMERIC_KINDS = {"tree": fixture_models.tree, "knn": fixture_models.knn, "weighted_vote": fixture_models.weighted_vote}
KINDS = [*NUMERIC_KINDS, "text"]
REQUESTS = 30  # random requests per kind, source and content type


def build(kind: str):
    return fixture_models.text_pipeline() if kind == "text" else NUMERIC_KINDS[kind]()


def sample(kind: str) -> pd.DataFrame:
    if kind == "text":
        return fixture_models.text_data()[0]
    features, _ = fixture_models.numeric_data()
    return pd.DataFrame(features, columns=[f"column_{j + 2}" for j in range(features.shape[1])])


def start(tmp_path_factory, kind: str, source: str):
    """A server for one model kind: with the contract training saves in model.json, or without."""
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    base = tmp_path_factory.mktemp(f"{kind}-{source}") / "ml"
    (base / "model").mkdir(parents=True)
    model = build(kind)
    joblib.dump(model, base / "model" / "model.joblib")
    if source == "model.json":
        description = {"format_version": 2, "input": contract.measure(model, sample(kind)).as_json()}
        (base / "model" / "model.json").write_text(json.dumps(description))
    return model, Server(base, env={"PYTHONPATH": str(HERE)}).start()


@pytest.fixture(scope="module", params=[(kind, source) for kind in KINDS for source in ("model.json", "measured")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def served(request, tmp_path_factory):
    kind, source = request.param
    model, server = start(tmp_path_factory, kind, source)
    yield kind, model, server
    server.stop()


@pytest.fixture(scope="module", params=["model.json", "measured"])
def tree_server(request, tmp_path_factory):
    model, server = start(tmp_path_factory, "tree", request.param)
    yield model, server
    server.stop()


@pytest.fixture(scope="module", params=["model.json", "measured"])
def knn_server(request, tmp_path_factory):
    model, server = start(tmp_path_factory, "knn", request.param)
    yield model, server
    server.stop()


# -- what the model itself says --------------------------------------------------------------

def expected(model, kind: str, rows: list[list]):
    """The model's own predict on the rows as a fork's caller would give them, or None if it raises."""
    data = pd.DataFrame({"review": [r[0] for r in rows]}, dtype=object) if kind == "text" \
        else np.array(rows, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return [str(label) for label in model.predict(data)]
        except Exception:  # noqa: BLE001 - any refusal: the server must answer 400
            return None


def random_rows(rng: np.random.Generator, kind: str) -> list[list]:
    n = int(rng.integers(1, 12))
    if kind == "text":
        def cell():
            roll = rng.random()
            if roll < 0.08:
                return None  # missing
            if roll < 0.15:
                return str(int(rng.integers(0, 100)))  # a number in a text column is text
            return " ".join(rng.choice(fixture_models.WORDS, size=int(rng.integers(1, 4))))
        return [[cell()] for _ in range(n)]
    rows = rng.normal(3.0, 2.0, size=(n, fixture_models.WIDTH)).round(3).tolist()
    for row in rows:
        for j in range(len(row)):
            roll = rng.random()
            if roll < 0.04:
                row[j] = None  # missing
            elif roll < 0.05:
                row[j] = float("inf") if rng.random() < 0.5 else float("-inf")
    return rows


def as_nan(rows: list[list]) -> list[list]:
    return [[np.nan if v is None else v for v in row] for row in rows]


# -- the bodies, in every content type -------------------------------------------------------

def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "inf" if value == np.inf else "-inf" if value == -np.inf else repr(value)
    return value


def names(kind: str) -> list[str]:
    """The columns as the model knows them (header-less CSV: column 1 was the target)."""
    return ["review"] if kind == "text" else [f"column_{j + 2}" for j in range(fixture_models.WIDTH)]


def parquet_body(rows: list[list], kind: str, row_group_size: int | None = None) -> bytes:
    """The rows as a Parquet file, a typed column per feature; None is a null."""
    kind_of_column = pa.string() if kind == "text" else pa.float64()
    table = pa.table({name: pa.array([row[j] for row in rows], kind_of_column) for j, name in enumerate(names(kind))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=row_group_size)
    return buffer.getvalue()


def bodies(rows: list[list], kind: str) -> dict[str, bytes]:
    def json_value(v):
        return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v

    out = {"text/csv": "".join(",".join(csv_cell(v) for v in row) + "\n" for row in rows).encode()}
    finite = all(v is None or not isinstance(v, float) or np.isfinite(v) for row in rows for v in row)
    if finite:  # JSON has no infinity
        out["application/json"] = json.dumps([[json_value(v) for v in row] for row in rows]).encode()
        out["application/jsonlines"] = "".join(json.dumps([json_value(v) for v in row]) + "\n"
                                               for row in rows).encode()
        if kind == "text":  # a flat list for a one-column model: a row per item
            out["application/json"] = json.dumps([row[0] for row in rows]).encode()
    if kind != "text":
        buffer = io.BytesIO()
        np.save(buffer, np.array(as_nan(rows), dtype=np.float64))
        out["application/x-npy"] = buffer.getvalue()
    out["application/x-parquet"] = parquet_body(rows, kind)
    return out


def test_every_answer_is_what_the_models_own_predict_gives_or_a_400(served):
    kind, model, server = served
    rng = np.random.default_rng(abs(hash(kind)) % 2**32)
    refused = answered = 0
    for _ in range(REQUESTS):
        rows = random_rows(rng, kind)
        want = expected(model, kind, as_nan(rows))
        for content_type, body in bodies(rows, kind).items():
            response = server.invoke(body, content_type, Accept="application/json")
            assert response.status_code in (200, 400), (content_type, body, response.text)
            if want is None:
                assert response.status_code == 400, (content_type, body, response.text, "predict raises")
                assert "Traceback" not in response.text and response.text.count("\n") == 1
                refused += 1
            else:
                assert response.status_code == 200, (content_type, body, response.text, want)
                assert [str(v) for v in response.json()["predictions"]] == want, (content_type, body)
                answered += 1
    assert answered, "no request was answered: the property says nothing"
    if kind in ("knn", "text", "tree"):  # these refuse infinity or missing values: some requests must
        assert refused, "no request was refused: the property says nothing about bad rows"


# -- one row in, one answer out, at batch size -----------------------------------------------

def batch_with_gaps(rng: np.random.Generator, rows: int, gaps: int) -> tuple[bytes, list[int]]:
    features = rng.normal(3.0, 1.5, size=(rows, fixture_models.WIDTH)).round(2)
    lines = [",".join(map(repr, row)) for row in features.tolist()]
    positions = sorted(rng.choice(rows, size=gaps, replace=False).tolist())
    for k, position in enumerate(positions):
        lines[position] = "" if k % 2 else ",,,"  # a blank line, a line of empty cells
    return ("\n".join(lines) + "\n").encode(), positions


def test_100000_rows_with_blank_and_empty_lines_get_one_answer_each_in_order(tree_server):
    """The tree takes missing values: a blank line or a line of empty cells is answered in its place."""
    model, server = tree_server
    rng = np.random.default_rng(7)
    body, positions = batch_with_gaps(rng, 100_000, 25)
    response = server.invoke(body, "text/csv", Accept="text/csv")
    assert response.status_code == 200, response.text[:300]
    labels = response.text.split("\n")
    assert labels[-1] == "" and len(labels) - 1 == 100_000
    rows = np.array([[np.nan] * fixture_models.WIDTH if not line.strip(",") else [float(c) for c in line.split(",")]
                     for line in body.decode().splitlines()])
    assert labels[:-1] == [str(v) for v in model.predict(rows)]
    assert all(labels[p] == str(model.predict(np.full((1, fixture_models.WIDTH), np.nan))[0]) for p in positions)


def test_100000_rows_with_a_blank_line_are_refused_naming_it_by_a_model_that_needs_values(knn_server):
    model, server = knn_server
    rng = np.random.default_rng(8)
    body, positions = batch_with_gaps(rng, 100_000, 3)
    for content_type, data in (("text/csv", body),
                               ("application/jsonlines", b"\n".join(
                                   b"" if not line.strip(b",") else b"[" + line + b"]"
                                   for line in body.splitlines()) + b"\n")):
        response = server.invoke(data, content_type)
        assert response.status_code == 400, response.text[:300]
        assert response.text.startswith(f"row {positions[0] + 1}, column 1 is missing"), response.text


def test_a_parquet_file_of_10000_rows_in_several_row_groups_gets_one_answer_each_in_order(tree_server):
    """As a batch transform with SplitType=None sends a Parquet file: one body, a row per row."""
    model, server = tree_server
    rows = np.random.default_rng(9).normal(3.0, 1.5, size=(10_000, fixture_models.WIDTH)).round(2).tolist()
    rows[17] = [None] * fixture_models.WIDTH  # nulls: missing values, which the tree takes
    response = server.invoke(parquet_body(rows, "tree", row_group_size=1000), "application/x-parquet",
                             Accept="text/csv")
    assert response.status_code == 200, response.text[:300]
    assert response.text.splitlines() == [str(v) for v in model.predict(np.array(as_nan(rows), dtype=np.float64))]
