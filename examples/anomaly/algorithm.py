"""The algorithms `train` offers, in this fork: one, an anomaly detector that learns no target.

Copy this file over algo/algorithm.py (see README.md). An IsolationForest learns what usual rows
look like from features alone: `tasks=("unsupervised",)` tells the plumbing to split no target
off the data. Its metrics are its own: the share of rows it flags, and their mean score.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from sagemaker_byo import Algorithm, Param, tabular


def isolation_forest(params, task, features):
    return tabular(features, IsolationForest(**params))


def flagged(model, features, target):
    """Per channel: how many rows the model calls anomalies (-1), and the mean score (lower: odder)."""
    return {"anomaly_rate": float(np.mean(model.predict(features) == -1)),
            "mean_score": float(np.mean(model.score_samples(features)))}


ALGORITHMS = {
    "isolation_forest": Algorithm(
        {
            "n_estimators": Param(int, 100, low=1, high=100_000),
            "max_samples": Param(int, None, low=1, nullable=True),  # null: min(256, rows)
            # The share of training rows taken for anomalies: it sets the threshold of the -1/1 label.
            "contamination": Param(float, None, low=1e-6, high=0.5, nullable=True),  # null: "auto"
            "random_state": Param(int, 0, low=0),
            "n_jobs": Param(int, -1, low=-1),
        },
        build=isolation_forest,
        tasks=("unsupervised",),
        metrics=flagged,
    ),
}
