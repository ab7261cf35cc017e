"""A model whose request says what it does, for the metrics and log tests: answer, fail, or wait.

The tests pickle it as `scripted_model.ScriptedModel` and start `serve` with this folder on
PYTHONPATH, so gunicorn can unpickle it.
"""

from __future__ import annotations

import logging
import time

import numpy as np

FAIL = -500.0  # a first cell of this: predict raises RuntimeError, as a bug would (a 500)
SLEEP = 1000.0  # a first cell of SLEEP + s (s < 600): predict logs a line, then takes s seconds

log = logging.getLogger("scripted_model")


class ScriptedModel:
    """Not scikit-learn. Labels each row of four numbers 'pos' or 'neg' by the sign of its sum;
    refuses other rows with a ValueError (a 400)."""

    n_features_in_ = 4

    def predict(self, data) -> np.ndarray:
        rows = np.asarray(data, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != 4:
            raise ValueError("ScriptedModel takes rows of 4 numbers")
        first = rows[0, 0] if len(rows) else 0.0
        if first == FAIL:
            raise RuntimeError("scripted failure")
        if SLEEP <= first < SLEEP + 600:  # not the infinities the server probes the model with
            # A hook's own log line: the tests find the request's inference id in it.
            log.warning("sleeping %gs", first - SLEEP)
            time.sleep(first - SLEEP)
        return np.where(rows.sum(axis=1) > 0, "pos", "neg")
