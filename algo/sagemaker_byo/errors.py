"""Errors sorted by who must act on them.

Training: a `UserError` is something the user fixes (a bad hyperparameter, an empty channel);
anything else is an `AlgorithmError`, a bug in the container. The failure file says which.

Serving: an `HTTPError` carries its status; one handler renders it as a short message. An
inference hook raises `BadRequest` (400) for input it refuses; its message is the answer.
"""

from __future__ import annotations


class UserError(Exception):
    """The job's input or configuration is wrong; the message says how to fix it."""


class AlgorithmError(Exception):
    """The training code failed on input it should have handled: a bug of ours."""


class TrainingStopped(Exception):
    """SageMaker asked the job to stop (StopTrainingJob, MaxRuntimeInSeconds, Spot)."""


def quoted(value: str, limit: int = 40) -> str:
    """A value the client sent, quoted for an error message and cut short: answers stay short."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


class HTTPError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(HTTPError):
    status = 400


class NotAcceptable(HTTPError):
    status = 406


class PayloadTooLarge(HTTPError):
    status = 413


class UnsupportedMediaType(HTTPError):
    status = 415


class ModelNotReady(HTTPError):
    status = 503


class HookError(HTTPError):
    """An inference hook broke the server's rules (answers that do not line up with the rows)."""

    status = 500


class NotFound(HTTPError):
    status = 404


class Conflict(HTTPError):
    status = 409


class InsufficientStorage(HTTPError):
    """Multi-model endpoints: not enough memory to load a model; SageMaker unloads others and retries."""

    status = 507
