"""What the server does to a loaded scikit-learn model so that each small prediction costs less.

On every `predict`, scikit-learn asks the estimator (and each estimator inside a pipeline) for
its tags and whether it is fitted, and recomputes both answers each time: for a one-row request
to a decision tree that is about a fifth of the call. A served model never changes, so
`memoize_introspection` asks once, when the model is loaded, and keeps the answers on each
estimator. No estimator class is special-cased and the predictions do not change; a model that is
not a scikit-learn estimator is left as it is.
"""

from __future__ import annotations

import sys
from typing import Any

_MAX_OBJECTS = 100_000  # a bound on the containers and objects walked through
_ATOMS = (str, bytes, int, float, complex, type(None))


class _Answer:
    """A method that returns what it was given (module level, so the model still pickles)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value

    def __reduce__(self):
        return _Answer, (self.value,)


def memoize_introspection(model: Any) -> int:
    """Keep each scikit-learn estimator's tags, and that it is fitted, on the estimator itself.

    Returns how many estimators were found. Only fitted estimators get the fitted answer: an
    unfitted one still raises NotFittedError as scikit-learn would.
    """
    sklearn_base = sys.modules.get("sklearn.base")
    if sklearn_base is None:  # the model did not bring scikit-learn in
        return 0
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    numpy = sys.modules.get("numpy")
    # Depth first through attributes, lists, tuples, dicts and object arrays.
    seen: set[int] = set()
    stack = [model]
    found = 0
    while stack and len(seen) < _MAX_OBJECTS:
        obj = stack.pop()
        if isinstance(obj, _ATOMS) or id(obj) in seen:  # atoms: a vocabulary's words and counts
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
            continue
        if isinstance(obj, dict):
            stack.extend(obj.values())
            continue
        if numpy is not None and isinstance(obj, numpy.ndarray):
            if obj.dtype == object:
                stack.extend(obj.ravel().tolist())
            continue
        if not isinstance(obj, sklearn_base.BaseEstimator):
            continue
        found += 1
        stack.extend(vars(obj).values())  # pipeline steps, fitted sub-estimators, wrapped ones
        tags = obj.__sklearn_tags__()
        if not hasattr(type(obj), "__sklearn_is_fitted__"):
            try:
                check_is_fitted(obj)
            except NotFittedError:
                pass
            else:
                obj.__sklearn_is_fitted__ = _Answer(True)
        obj.__sklearn_tags__ = _Answer(tags)
    return found
