"""Models we did not write, for the plumbing's serving tests: each kind a fork might serve.

The tests pickle them from here and start `serve` with this folder on PYTHONPATH, so gunicorn
can unpickle the one class that is not scikit-learn's (`fixture_models.WeightedVote`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

WIDTH = 4
WORDS = ["lovely", "lamp", "awful", "chair", "great", "broken", "cosy", "sofa", "cheap", "table"]


class WeightedVote:
    """Not scikit-learn: a weighted sum of four numbers, thresholded, labelled 'high' or 'low'.
    Refuses anything but rows of four numbers, as a hand-written model would."""

    n_features_in_ = WIDTH

    def __init__(self, weights=(0.5, -0.25, 1.0, 0.75)):
        self.weights = np.asarray(weights)

    def predict(self, data):
        rows = np.asarray(data, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != WIDTH:
            raise ValueError(f"WeightedVote takes rows of {WIDTH} numbers")
        return np.where(rows @ self.weights > 1.0, "high", "low")


def numeric_data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(3.0, 1.5, size=(n, WIDTH)).round(2)
    labels = np.where(features[:, 0] + features[:, 2] > 6.0, "yes", "no")
    return features, labels


def text_data(n: int = 80, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    reviews = [" ".join(rng.choice(WORDS, size=3)) for _ in range(n)]
    labels = np.array(["good" if any(w in r for w in ("lovely", "great", "cosy")) else "bad" for r in reviews])
    return pd.DataFrame({"review": reviews}), labels


def tree() -> DecisionTreeClassifier:
    """Takes missing values itself."""
    features, labels = numeric_data()
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(features.astype(np.float32), labels)


def knn():
    """Refuses missing values: the scaler and KNN have no answer for them."""
    features, labels = numeric_data()
    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=3)).fit(features, labels)


def text_pipeline():
    """One column of free text, fitted on a DataFrame."""
    frame, labels = text_data()
    return make_pipeline(ColumnTransformer([("words", TfidfVectorizer(), "review")]),
                         LogisticRegression()).fit(frame, labels)


def weighted_vote() -> WeightedVote:
    return WeightedVote()
