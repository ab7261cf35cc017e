"""The inference code: SageMaker runs `docker run IMAGE serve`, and this is what answers.

This copy (examples/anomaly/) serves an anomaly detector: the answer is each row's anomaly score
(the model's `score_samples`: lower is odder), or its -1/1 label (the model's own `predict`: -1
an anomaly, 1 usual) when the request says so with the custom attribute `answer=label`
(`X-Amzn-SageMaker-Custom-Attributes: answer=label`). `answer` is this predictor's own key: the
server reserves only `output`, and `output=probabilities` is refused, as this model has none.

Edit the four hooks to change how the model is loaded, how a request becomes model input, how
predictions are made and how they are written back. The Flask app built from them at the bottom
serves /ping and /invocations; the SageMaker plumbing lives in sagemaker_byo.

    model_fn(model_dir)                            -> the model, loaded once when the server starts
    input_fn(input_data, content_type, invocation) -> model input (the request body is bytes)
    predict_fn(data, model, invocation)            -> predictions, one per row
    output_fn(prediction, accept, invocation)      -> the response body, in the negotiated `accept` type

`invocation` (sagemaker_byo.Invocation) carries the request's options: `accept`,
`custom_attributes` (every key=value pair of the header, keys in lower case), `wants_probabilities`,
and `contract`, what the model takes. Raise `BadRequest(message)` from any hook to answer 400 with
that message. The server counts: every row input_fn gives must get exactly one answer.
"""

from __future__ import annotations

import os

import joblib

from sagemaker_byo import ENCODERS, BadRequest, Hooks, Invocation, create_app, encode, probabilities

MODEL_FILE = "model.joblib"  # as written by algo/train
ANSWERS = ("score", "label")  # the values of this predictor's custom attribute `answer`


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
    if invocation.wants_probabilities:  # output=probabilities: a 400 saying this model has none
        return probabilities(model, data)
    answer = invocation.custom_attributes.get("answer", "score").lower()
    if answer == "label":
        return model.predict(data)  # -1 for an anomaly, 1 for a usual row
    if answer == "score":
        return model.score_samples(data)  # one number per row, lower for odder rows
    raise BadRequest(f"custom attribute answer={answer[:40]}: use answer=score (the default) or answer=label")


def output_fn(prediction, accept: str, invocation: Invocation) -> bytes:
    return encode(prediction, accept)


app = create_app(Hooks(model_fn, input_fn, predict_fn, output_fn, accept_types=tuple(ENCODERS)))
