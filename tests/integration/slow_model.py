"""A stand-in model whose predictions take as long as the request asks, for timeout and shutdown tests.

The tests pickle it as `slow_model.SlowClassifier` and start `serve` with this folder on
PYTHONPATH, so gunicorn can unpickle it.
"""

from __future__ import annotations

import sys
import time

import numpy as np

LABEL = "slow"


class SlowClassifier:
    """Sleeps for the number of seconds in the first cell of the first row, then labels every row."""

    n_features_in_ = 4

    def predict(self, data: np.ndarray) -> np.ndarray:
        seconds = float(data[0, 0])
        # The tests wait for this line to know the request has reached the model.
        print(f"slow_model: sleeping {seconds:g}s", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return np.array([LABEL] * len(data))
