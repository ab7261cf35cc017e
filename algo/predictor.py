"""The inference code: SageMaker runs `docker run IMAGE serve`, and this is what answers.

Edit the four hooks to change how the model is loaded, how a request becomes model input, how
predictions are made and how they are written back. The Flask app built from them at the bottom
serves /ping and /invocations; the SageMaker plumbing lives in sagemaker_byo.

    model_fn(model_dir)               -> the model, loaded once when the server starts
    input_fn(input_data, content_type) -> model input (the request body is bytes)
    predict_fn(data, model)           -> predictions
    output_fn(prediction, accept)     -> the response body, in the negotiated `accept` type
"""

from __future__ import annotations

import os

import joblib

from sagemaker_byo import decoders, encoders, inference
from sagemaker_byo.server import Hooks, create_app

MODEL_FILE = "model.joblib"  # as written by algo/train


def model_fn(model_dir: str):
    path = os.path.join(model_dir, MODEL_FILE)
    try:
        return joblib.load(path)
    except FileNotFoundError:
        raise
    except Exception as error:  # a damaged file or another library version: name the file and why
        raise RuntimeError(f"{path} cannot be loaded ({type(error).__name__}: {error}); is it a model "
                           f"algo/train wrote, with the library versions in model.json?") from error


def input_fn(input_data: bytes, content_type: str):
    return decoders.decode(input_data, content_type)


def predict_fn(data, model):
    # Class probabilities when the request asks for them (custom attribute output=probabilities,
    # or SAGEMAKER_INFERENCE_OUTPUT=probabilities for batch transform).
    if inference.wants_probabilities():
        return inference.probabilities(model, data)
    return model.predict(data)


def output_fn(prediction, accept: str) -> bytes:
    return encoders.encode(prediction, accept)


app = create_app(Hooks(model_fn, input_fn, predict_fn, output_fn, accept_types=tuple(encoders.ENCODERS)))
