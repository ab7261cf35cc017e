"""algo/predictor.py: the four hooks a user edits, and the app built from them at import."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

from sagemaker_byo import contract
from sagemaker_byo.errors import BadRequest, NotAcceptable, UnsupportedMediaType
from sagemaker_byo.serving.invocation import PREDICTIONS, PROBABILITIES, Invocation, Probabilities

ROWS = b"5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n5.9,3.0,4.2,1.5\n"
ARRAY = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])


@pytest.fixture
def invocation(predictor):
    """`invocation(accept=..., output=..., input_contract=...)`: a request to the app predictor.py built,
    with the contract it measured or read for the trained model unless another is given."""

    def build(accept: str = "text/csv", output: str = PREDICTIONS, input_contract=None, **attributes):
        measured = predictor.app.extensions["sagemaker_model"].contract
        return Invocation("text/csv", accept, dict(attributes), output, input_contract or measured)

    return build


def test_model_fn_loads_the_trained_model(predictor, trained_dir):
    model = predictor.model_fn(str(trained_dir / "model"))
    expected = joblib.load(trained_dir / "model" / predictor.MODEL_FILE)
    assert model.n_features_in_ == expected.n_features_in_ == 4
    assert model.classes_.tolist() == expected.classes_.tolist()


def test_model_fn_raises_when_the_folder_has_no_model(predictor, tmp_path):
    with pytest.raises(FileNotFoundError):
        predictor.model_fn(str(tmp_path))


def test_input_fn_decodes_csv_rows_into_the_numbers_the_model_was_fitted_on(predictor, invocation):
    data = predictor.input_fn(ROWS, "text/csv; charset=utf-8", invocation())
    assert data.shape == (3, 4) and data.dtype == np.float32  # algo/train fits the channel's float32 numbers
    assert np.array_equal(data, ARRAY.astype(np.float32))


@pytest.mark.parametrize(("body", "content_type", "error"), [
    (b"[1, 2]", "application/xml", UnsupportedMediaType),
    (b"[1, 2", "application/json", BadRequest),
    (b"1,2\n3\n", "text/csv", BadRequest),
])
def test_input_fn_rejects_what_it_cannot_read(predictor, invocation, body, content_type, error):
    with pytest.raises(error):
        predictor.input_fn(body, content_type, invocation())


def test_input_fn_holds_rows_to_the_models_contract(predictor, invocation):
    with pytest.raises(BadRequest, match="row 2, column 3: 'x' is not a number"):
        predictor.input_fn(b"5.1,3.5,1.4,0.2\n5.1,3.5,x,0.2\n", "text/csv", invocation())
    with pytest.raises(BadRequest, match="row 1 has 2 values; the model takes 4"):
        predictor.input_fn(b"1,2\n", "text/csv", invocation())


def test_input_fn_keeps_text_cells_for_a_model_whose_contract_is_unknown(predictor, invocation):
    data = predictor.input_fn(b"1,x\n", "text/csv", invocation(input_contract=contract.UNKNOWN))
    assert data.tolist() == [[1.0, "x"]]


def test_input_fn_makes_a_blank_line_a_row_of_missing_values(predictor, invocation):
    unchecked = invocation(input_contract=contract.UNKNOWN)
    data = predictor.input_fn(b"5.1,3.5,1.4,0.2\n\n", "text/csv", unchecked)
    np.testing.assert_array_equal(data, [[5.1, 3.5, 1.4, 0.2], [np.nan] * 4])


def test_the_app_answers_400_for_text_where_the_trained_model_needs_a_number(predictor):
    response = predictor.app.test_client().post("/invocations", data=b"5.1,3.5,x,0.2\n", content_type="text/csv")
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "row 1, column 3: 'x' is not a number\n"


def test_hooks_chain_to_the_model_predictions(predictor, trained_dir, invocation):
    model = predictor.model_fn(str(trained_dir / "model"))
    request = invocation()
    data = predictor.input_fn(ROWS, "text/csv", request)
    prediction = predictor.predict_fn(data, model, request)  # data first, model second
    assert prediction.tolist() == model.predict(data).tolist()
    body = predictor.output_fn(prediction, "text/csv", request)
    assert body.decode().splitlines() == prediction.tolist()


def test_predict_fn_gives_probabilities_when_the_invocation_asks_for_them(predictor, trained_dir, invocation):
    model = predictor.model_fn(str(trained_dir / "model"))
    request = invocation(output=PROBABILITIES)
    prediction = predictor.predict_fn(predictor.input_fn(ROWS, "text/csv", request), model, request)
    assert isinstance(prediction, Probabilities)
    assert prediction.classes == tuple(model.classes_.tolist())
    np.testing.assert_array_equal(prediction.values, model.predict_proba(ARRAY))


def test_output_fn_writes_the_accept_it_is_given(predictor, invocation):
    request = invocation(accept="application/json")
    assert predictor.output_fn(np.array(["a", "b"]), "application/json", request) == b'{"predictions": ["a", "b"]}'


def test_output_fn_refuses_a_type_it_cannot_write(predictor, invocation):
    with pytest.raises(NotAcceptable):
        predictor.output_fn(np.array(["setosa"]), "application/xml", invocation())


def test_the_app_serves_the_trained_model(predictor, trained_dir):
    client = predictor.app.test_client()
    assert client.get("/ping").status_code == 200
    response = client.post("/invocations", data=ROWS, content_type="text/csv")
    assert response.status_code == 200
    model = joblib.load(trained_dir / "model" / predictor.MODEL_FILE)
    assert response.get_data(as_text=True).splitlines() == model.predict(ARRAY).tolist()


def test_the_app_answers_a_blank_line_in_its_place(predictor, trained_dir):
    response = predictor.app.test_client().post("/invocations", data=b"5.1,3.5,1.4,0.2\n\n6.7,3.0,5.2,2.3\n",
                                                content_type="text/csv")
    model = joblib.load(trained_dir / "model" / predictor.MODEL_FILE)
    blank = np.array([[5.1, 3.5, 1.4, 0.2], [np.nan] * 4, [6.7, 3.0, 5.2, 2.3]])
    try:
        expected = model.predict(blank).tolist()
    except ValueError:  # a model that refuses missing values: the blank line is named
        assert response.status_code == 400
        assert response.get_data(as_text=True).startswith("row 2, column 1")
    else:
        assert response.status_code == 200
        assert response.get_data(as_text=True).splitlines() == expected
