"""Large bodies (asynchronous inference, big batch mini-batches) through the real `algo/serve`:
a CSV or JSON Lines body larger than MODEL_SERVER_CHUNK_MB is scored a chunk of lines at a time,
and is answered exactly as the same body in one piece, line for line, or refused whole naming the
row counted from the start of the body. Bodies of several MB with 1 MB chunks, models we did not
write: a tree that takes missing values, a scaler + KNN that refuses them, a TF-IDF text pipeline.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from support import Server, have_nginx, require

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fixture_models  # noqa: E402

ROWS = 300_000  # about 6 MB of CSV: six chunks of 1 MB
LIMITS = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "64", "MODEL_SERVER_TIMEOUT": "120"}


def start(tmp_path_factory, model, chunk_mb: str) -> Server:
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    base = tmp_path_factory.mktemp("large") / "ml"
    (base / "model").mkdir(parents=True)
    joblib.dump(model, base / "model" / "model.joblib")
    return Server(base, env={"PYTHONPATH": str(HERE), "MODEL_SERVER_CHUNK_MB": chunk_mb, **LIMITS}).start()


@pytest.fixture(scope="module", params=["tree", "knn", "text"])
def servers(request, tmp_path_factory):
    """(kind, model, chunked server, whole-body server) for one model kind."""
    kinds = {"tree": fixture_models.tree, "knn": fixture_models.knn, "text": fixture_models.text_pipeline}
    model = kinds[request.param]()
    chunked, whole = start(tmp_path_factory, model, "1"), start(tmp_path_factory, model, "0")
    yield request.param, model, chunked, whole
    chunked.stop()
    whole.stop()


def numeric_lines(rng: np.random.Generator, rows: int, gaps: int) -> tuple[list[str], list[int]]:
    features = rng.normal(3.0, 1.5, size=(rows, fixture_models.WIDTH)).round(2)
    lines = [",".join(map(repr, row)) for row in features.tolist()]
    positions = sorted(rng.choice(rows, size=gaps, replace=False).tolist())
    for k, position in enumerate(positions):
        lines[position] = "" if k % 2 else ",,,"
    return lines, positions


def text_lines(rng: np.random.Generator, rows: int) -> list[str]:
    words = fixture_models.WORDS
    lines = []
    for i in range(rows):
        review = " ".join(rng.choice(words, size=3))
        if i % 7 == 0:  # a quoted cell holding a comma, and sometimes a line end
            review = f'"{review}, {"and" if i % 2 else "then"}{chr(10) if i % 21 == 0 else " "}{rng.choice(words)}"'
        lines.append(review)
    return lines


def own_predict(model, kind: str, body: bytes) -> list[str]:
    if kind == "text":
        reviews = [row[0] for row in csv.reader(io.StringIO(body.decode(), newline=""))]
        return [str(v) for v in model.predict(pd.DataFrame({"review": reviews}, dtype=object))]
    rows = [[np.nan] * fixture_models.WIDTH if not line.strip(",") else [float(c) for c in line.split(",")]
            for line in body.decode().splitlines()]
    return [str(v) for v in model.predict(np.array(rows))]


def csv_answers(text: str) -> list[str]:
    return [row[0] for row in csv.reader(io.StringIO(text, newline=""))]


def test_a_large_csv_body_is_answered_line_for_line_as_the_model_predicts_and_as_in_one_piece(servers):
    kind, model, chunked, whole = servers
    rng = np.random.default_rng(1)
    if kind == "text":
        body = ("\n".join(text_lines(rng, ROWS // 2)) + "\n").encode()
    else:
        lines, _ = numeric_lines(rng, ROWS, 0 if kind == "knn" else 40)
        body = ("\n".join(lines) + "\n").encode()
    assert len(body) > 2 * 1024 * 1024  # several chunks
    response = chunked.invoke(body, "text/csv", Accept="text/csv")
    assert response.status_code == 200, response.text[:300]
    assert csv_answers(response.text) == own_predict(model, kind, body)
    assert response.content == whole.invoke(body, "text/csv", Accept="text/csv").content
    assert "in chunks of 1 MB" in chunked.log()


@pytest.mark.parametrize("accept", ["application/json", "application/jsonlines"])
def test_a_large_json_lines_body_answers_in_json_and_json_lines_as_in_one_piece(servers, accept):
    kind, model, chunked, whole = servers
    rng = np.random.default_rng(2)
    if kind == "text":
        body = "".join(json.dumps(review) + "\n" for review in
                       (" ".join(rng.choice(fixture_models.WORDS, size=3)) for _ in range(ROWS // 3))).encode()
    else:
        lines, _ = numeric_lines(rng, ROWS // 2, 0)
        body = "".join(f"[{line}]\n" for line in lines).encode()
    response = chunked.invoke(body, "application/jsonlines", Accept=accept)
    assert response.status_code == 200, response.text[:300]
    assert response.content == whole.invoke(body, "application/jsonlines", Accept=accept).content
    if accept == "application/json":
        assert len(response.json()["predictions"]) == body.count(b"\n")


@pytest.mark.parametrize("servers", ["knn"], indirect=True)  # it refuses a missing value
def test_a_row_the_model_refuses_far_into_a_large_body_is_a_400_naming_its_row(servers):
    _kind, _model, chunked, whole = servers
    rng = np.random.default_rng(3)
    lines, _ = numeric_lines(rng, ROWS, 0)
    position = ROWS - 1234  # in the last chunk
    lines[position] = "1.0,,2.0,3.0"
    body = ("\n".join(lines) + "\n").encode()
    for content_type, data in (("text/csv", body),
                               ("application/jsonlines", "".join(
                                   f"[{line.replace(',,', ',null,')}]\n" for line in lines).encode())):
        response = chunked.invoke(data, content_type)
        assert response.status_code == 400, response.text[:300]
        assert response.text.startswith(f"row {position + 1}, column 2 is missing"), response.text
        assert response.text == whole.invoke(data, content_type).text


@pytest.mark.parametrize("servers", ["tree"], indirect=True)  # it takes missing values
def test_a_large_body_with_a_blank_line_in_every_chunk_answers_every_line(servers):
    kind, model, chunked, _whole = servers
    rng = np.random.default_rng(4)
    lines, positions = numeric_lines(rng, ROWS, 300)
    body = ("\n".join(lines) + "\n\n\n").encode()  # blank lines at the very end are rows too
    response = chunked.invoke(body, "text/csv")
    assert response.status_code == 200, response.text[:300]
    answers = response.text.split("\n")[:-1]
    assert len(answers) == ROWS + 2
    assert answers == own_predict(model, kind, body)
