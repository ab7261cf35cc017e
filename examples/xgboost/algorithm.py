"""The algorithms `train` offers, in this fork: gradient-boosted trees from XGBoost.

Copy this file over algo/algorithm.py, add `requirements.in`'s line to the repository's
requirements.in and run `make lock` (see README.md). XGBoost's classifier takes classes numbered 0..n-1, so the
labels are encoded here and `Labelled` answers them as the data wrote them ("setosa", not 0).
The model is fitted on float32 arrays, as the server sends it rows: no feature names to disagree.
"""

from __future__ import annotations

import numpy as np
from sklearn.preprocessing import LabelEncoder
from xgboost import XGBClassifier, XGBRegressor

from sagemaker_byo import Algorithm, Param, UserError


class Labelled:
    """An XGBoost classifier answering the training labels (predict, predict_proba, classes_)."""

    def __init__(self, model: XGBClassifier, classes: np.ndarray) -> None:
        self.model = model
        self.classes_ = classes
        self.n_features_in_ = model.n_features_in_

    def predict(self, features) -> np.ndarray:
        return self.classes_[np.asarray(self.model.predict(features), dtype=np.int64)]

    def predict_proba(self, features) -> np.ndarray:
        return self.model.predict_proba(features)


def xgboost(params, task, features, target):
    if features.dtypes.map(lambda dtype: dtype.kind not in "biuf").any():
        raise UserError("this XGBoost fork takes numeric features only; encode text columns first")
    matrix = features.to_numpy(dtype=np.float32)
    if task == "regression":
        return XGBRegressor(**params).fit(matrix, target)
    encoder = LabelEncoder().fit(target)
    model = XGBClassifier(**params).fit(matrix, encoder.transform(target))
    return Labelled(model, encoder.classes_)


ALGORITHMS = {
    "xgboost": Algorithm(
        {
            "n_estimators": Param(int, 100, low=1, high=100_000),
            "max_depth": Param(int, 6, low=1, high=64),
            "learning_rate": Param(float, 0.3, low=1e-6, high=1.0),
            "subsample": Param(float, 1.0, low=0.01, high=1.0),
            "random_state": Param(int, 0, low=0),
            "n_jobs": Param(int, None, low=1, nullable=True),  # null: every CPU the container may use
        },
        fit=xgboost,
    ),
}
