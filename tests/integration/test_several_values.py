"""Models that answer several values per row (a regressor with two targets, a transformer giving
a vector per row), served by the real `algo/serve` of a fork whose predictor answers whatever the
model gives: one answer per row, in order, in CSV, JSON and JSON Lines, also for one row and for
a body scored in chunks."""

from __future__ import annotations

import shutil
import textwrap

import joblib
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge

from support import Server, answers, bodies, have_nginx, plumbing_algo, require

PREDICTOR = textwrap.dedent('''\
    """A fork's predictor: the model's predict, or transform for a model without one."""

    import joblib

    from sagemaker_byo import ENCODERS, Hooks, create_app, encode


    def model_fn(model_dir):
        return joblib.load(f"{model_dir}/model.joblib")


    def input_fn(body, content_type, invocation):
        return invocation.conform(invocation.decode(body, content_type))


    def predict_fn(data, model, invocation):
        return model.predict(data) if hasattr(model, "predict") else model.transform(data)


    def output_fn(prediction, accept, invocation):
        return encode(prediction, accept)


    app = create_app(Hooks(model_fn, input_fn, predict_fn, output_fn, accept_types=tuple(ENCODERS)))
''')


def features(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 3)).round(4)


def two_targets():
    x = features(200)
    return Ridge().fit(x, np.column_stack([x @ [1.0, 2.0, 0.5], x @ [-1.0, 0.3, 2.0]]))


MODELS = {"two_targets": two_targets, "vector_per_row": lambda: PCA(n_components=2).fit(features(200))}


@pytest.fixture(scope="module", params=list(MODELS))
def served(request, tmp_path_factory):
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    tmp = tmp_path_factory.mktemp(request.param)
    algo = tmp / "algo"
    shutil.copytree(plumbing_algo(), algo, ignore=shutil.ignore_patterns("__pycache__"))
    (algo / "predictor.py").write_text(PREDICTOR)
    (tmp / "ml" / "model").mkdir(parents=True)
    model = MODELS[request.param]()
    joblib.dump(model, tmp / "ml" / "model" / "model.joblib")
    server = Server(tmp / "ml", algo=algo, env={"MODEL_SERVER_CHUNK_MB": "1"}).start()
    own = model.predict if hasattr(model, "predict") else model.transform
    yield own, server
    server.stop()


@pytest.mark.parametrize("rows", [1, 7])
@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_each_row_gets_its_vector_as_one_answer(served, rows, accept):
    own, server = served
    x = features(rows, seed=rows)
    want = own(x)
    assert want.shape == (rows, 2)
    for content_type, body in bodies(x).items():
        response = server.invoke(body, content_type, Accept=accept)
        assert response.status_code == 200, (content_type, response.text)
        got = answers(response, accept)
        assert len(got) == rows and all(len(row) == 2 for row in got), (content_type, response.text[:200])
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{content_type} -> {accept}")


@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_a_body_scored_in_chunks_keeps_one_vector_per_row_in_order(served, accept):
    own, server = served
    x = features(100_000, seed=5)  # CSV over 2 MB: three chunks of 1 MB
    body = bodies(x)["text/csv"]
    assert len(body) > 2 * 1024 * 1024
    response = server.invoke(body, "text/csv", Accept=accept)
    assert response.status_code == 200, response.text[:300]
    got = answers(response, accept)
    assert len(got) == len(x)
    np.testing.assert_allclose(got, own(x), rtol=1e-12)
