"""The inference code: SageMaker runs `docker run IMAGE serve`, and this is what answers.

Edit the four hooks to change how the model is loaded, how a request becomes model input, how
predictions are made and how they are written back. The Flask app built from them at the bottom
serves /ping and /invocations; the SageMaker plumbing lives in sagemaker_byo.

    model_fn(model_dir)                            -> the model, loaded once when the server starts
    input_fn(input_data, content_type, invocation) -> model input (the request body is bytes)
    predict_fn(data, model, invocation)            -> predictions, one per row
    output_fn(prediction, accept, invocation)      -> the response body, in the negotiated `accept` type

`invocation` (sagemaker_byo.Invocation) carries the request's options: `accept`,
`custom_attributes`, `wants_probabilities`, and `contract`, what the model takes (measured by
calling it). Raise `BadRequest(message)` from any hook to answer 400 with that message; a
ValueError raised while decoding (input_fn) or predicting is a 400 too; anything else is a 500
whose traceback goes to the log. The server counts: every row input_fn gives must get exactly one
answer from predict_fn and output_fn, in order, or the request is a 500 naming the hook.
"""

from __future__ import annotations

import os

import joblib

from sagemaker_byo import (
    ENCODERS,
    BadRequest,  # noqa: F401 - for hooks that refuse input
    Hooks,
    Invocation,
    create_app,
    encode,
    probabilities,
)

MODEL_FILE = "model.joblib"  # as written by algo/train

# With MODEL_SERVER_MODEL_FORMAT=skops the server loads model.skops instead, without model_fn, and
# without running code: it builds only the types it trusts (scikit-learn's, LightGBM's, numpy's,
# scipy's) and these, your own classes a model holds, as "module.Class" (e.g. "algorithm.MyModel").
TRUSTED_TYPES: list[str] = []


def model_fn(model_dir: str):
    path = os.path.join(model_dir, MODEL_FILE)
    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise
    except Exception as error:  # a damaged file or another library version: name the file and why
        raise RuntimeError(f"{path} cannot be loaded ({type(error).__name__}: {error}); is it a model "
                           f"algo/train wrote, with the library versions in model.json?") from error


def input_fn(input_data: bytes, content_type: str, invocation: Invocation):
    # Decode (CSV, JSON, JSON Lines, .npy), then hold the rows to what the model takes.
    return invocation.conform(invocation.decode(input_data, content_type))


def predict_fn(data, model, invocation: Invocation):
    # Class probabilities when the request asks for them (custom attribute output=probabilities,
    # or SAGEMAKER_INFERENCE_OUTPUT=probabilities for batch transform).
    if invocation.wants_probabilities:
        return probabilities(model, data)
    return model.predict(data)


def output_fn(prediction, accept: str, invocation: Invocation) -> bytes:
    return encode(prediction, accept)


app = create_app(Hooks(model_fn, input_fn, predict_fn, output_fn, accept_types=tuple(ENCODERS),
                       trusted_types=tuple(TRUSTED_TYPES)))
