"""Errors sorted by who must act on them.

Training: a `UserError` is something the user fixes (a bad hyperparameter, an empty channel);
anything else is an `AlgorithmError`, a bug in the container. The failure file says which.

Serving: an `HTTPError` carries its status; one handler renders it as a short message. An
inference hook raises `BadRequest` (400) for input it refuses; its message is the answer.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """The job's input or configuration is wrong; the message says how to fix it."""


class AlgorithmError(Exception):
    """The training code failed on input it should have handled: a bug of ours."""


class TrainingStopped(Exception):
    """SageMaker asked the job to stop (StopTrainingJob, MaxRuntimeInSeconds, Spot)."""


_SHARED_OBJECT = re.compile(r"([\w.+-]+\.so(?:\.[\w.]+)?): cannot open shared object file")


def missing_library(error: BaseException) -> str | None:
    """What to do when `error` (or one it was raised from) says a library is not installed: a
    Python package (ImportError) belongs in requirements.in (then `make lock`), a system library a package loads
    (an OSError such as `libgomp.so.1: cannot open shared object file`) in system-packages.txt.
    None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        ours = (current.name or "").split(".")[0] == "sagemaker_byo" if isinstance(current, ImportError) else False
        if isinstance(current, ImportError) and not ours:  # one of ours missing is our bug
            if isinstance(current, ModuleNotFoundError) and current.name:
                what = f"the Python package that provides '{current.name.split('.')[0]}'"
            else:
                what = "a Python package it imports"
            return (f"{what} is not installed in this image ({type(current).__name__}: {current}); add it "
                    f"to requirements.in, run make lock and rebuild the image")
        found = _SHARED_OBJECT.search(str(current))
        if found:
            return (f"the system library {found.group(1)} is not installed in this image "
                    f"({type(current).__name__}: {' '.join(str(current).split())[:200]}); add the Debian package "
                    f"that provides it to system-packages.txt and rebuild the image")
        current = current.__cause__ or current.__context__
    return None


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
