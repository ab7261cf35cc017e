"""algo/predictor.py: the four hooks a user edits, and the app built from them at import."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from sagemaker_byo.errors import BadRequest, NotAcceptable, UnsupportedMediaType

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n"


def test_model_fn_loads_the_trained_model(predictor, trained_dir):
    model = predictor.model_fn(str(trained_dir / "model"))
    expected = joblib.load(trained_dir / "model" / predictor.MODEL_FILE)
    assert model.n_features_in_ == expected.n_features_in_ == 4
    assert model.classes_.tolist() == expected.classes_.tolist()


def test_model_fn_raises_when_the_folder_has_no_model(predictor, tmp_path):
    with pytest.raises(FileNotFoundError):
        predictor.model_fn(str(tmp_path))


def test_input_fn_decodes_csv_rows(predictor):
    data = predictor.input_fn(ROWS, "text/csv; charset=utf-8")
    assert data.shape == (3, 4) and data.dtype == np.float64


@pytest.mark.parametrize(("body", "content_type", "error"), [
    (b"[1, 2]", "application/xml", UnsupportedMediaType),
    (b"[1, 2", "application/json", BadRequest),
    (b"1,2\n3\n", "text/csv", BadRequest),
])
def test_input_fn_rejects_what_it_cannot_read(predictor, body, content_type, error):
    with pytest.raises(error):
        predictor.input_fn(body, content_type)


def test_input_fn_keeps_text_cells_for_the_models_schema_to_judge(predictor):
    data = predictor.input_fn(b"1,x\n", "text/csv")
    assert data.tolist() == [[1.0, "x"]]


def test_the_app_answers_400_for_text_where_the_trained_model_needs_a_number(predictor):
    response = predictor.app.test_client().post("/invocations", data=b"5.1,3.5,x,0.2\n", content_type="text/csv")
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "row 1, column 3: 'x' is not a number\n"


def test_hooks_chain_to_the_model_predictions(predictor, trained_dir):
    model = predictor.model_fn(str(trained_dir / "model"))
    data = predictor.input_fn(ROWS, "text/csv")
    prediction = predictor.predict_fn(data, model)  # data first, model second
    assert prediction.tolist() == model.predict(data).tolist()
    body = predictor.output_fn(prediction, "text/csv")
    assert body.decode().splitlines() == prediction.tolist()


def test_output_fn_refuses_a_type_it_cannot_write(predictor):
    with pytest.raises(NotAcceptable):
        predictor.output_fn(np.array(["setosa"]), "application/xml")


def test_the_app_serves_the_trained_model(predictor, trained_dir):
    client = predictor.app.test_client()
    assert client.get("/ping").status_code == 200
    response = client.post("/invocations", data=ROWS, content_type="text/csv")
    assert response.status_code == 200
    model = joblib.load(trained_dir / "model" / predictor.MODEL_FILE)
    expected = model.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]))
    assert response.get_data(as_text=True).splitlines() == expected.tolist()
    assert expected.tolist() == ["setosa", "virginica", "versicolor"]
