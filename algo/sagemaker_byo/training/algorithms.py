"""What an algorithm is to the training plumbing, and a preprocessing helper for tabular data.

`algo/algorithm.py` holds `ALGORITHMS`, a dict from name to `Algorithm`. An algorithm declares its
own typed hyperparameters and either `build`s an unfitted scikit-learn-style model (the plumbing
fits it, growing it with checkpoints where `grows` is set) or `fit`s a model itself. Whatever it
returns is saved with joblib and served by calling its `predict` (and `predict_proba`, if any).
An unsupervised algorithm (`tasks=("unsupervised",)`) learns from features alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from .evaluation import CLASSIFICATION, REGRESSION, UNSUPERVISED
from .hyperparameters import Param

SUPERVISED = (CLASSIFICATION, REGRESSION)
TASKS = (*SUPERVISED, UNSUPERVISED)
DISTRIBUTED = (None, "data_parallel", "joblib")


@dataclass(frozen=True)
class Algorithm:
    """One entry of the catalogue.

    `build(params, task, features)` returns an unfitted estimator or Pipeline, which the plumbing
    fits; `fit(params, task, features, target)` returns a fitted model (anything with `predict`).
    Give exactly one. `params` holds the algorithm's own hyperparameters that apply to `task`,
    those left null (None) omitted so the estimator keeps its own default; `features` is the
    training features table (named columns, text columns as objects); `target` a numpy array
    (of shape (rows, targets) when the job has several targets), or None for the task
    "unsupervised".

    `tasks` are those it supports: "classification" and "regression" learn a target column;
    "unsupervised" (anomaly detection, clustering, embeddings) learns from features alone, and
    the plumbing then splits no target off the data. `metrics(model, features, target)`, if
    given, returns more figures {name: number} for each channel (features as the model takes
    them; target None when unsupervised): an unsupervised model's only metrics.
    """

    hyperparameters: dict[str, Param]
    build: Callable[[dict, str, pd.DataFrame], Any] | None = None
    fit: Callable[[dict, str, pd.DataFrame, np.ndarray | None], Any] | None = None
    tasks: tuple[str, ...] = SUPERVISED
    # The parameter warm_start grows step by step ("n_estimators", "max_iter"): fitted in steps,
    # with a checkpoint after each, when the job has a checkpoint folder. Needs `build`.
    grows: str | None = None
    # Fit on the DataFrame even when every column is numeric (otherwise: a float32 array).
    frame: bool = False
    # How it trains when the job has several hosts (instance_count > 1); None: it is refused there.
    #   "data_parallel": each host keeps its own share of the rows; the preprocessing is fitted on
    #       what every host's share holds (categories), and the final estimator is trained through
    #       its Dask twin (training.distributed.DASK_TWINS: LightGBM's). Needs `build`.
    #   "joblib": the leader gathers every host's rows and fits; the estimator's joblib work (a
    #       forest's trees) runs on every host's cores through joblib's Dask backend.
    distributed: str | None = None
    metrics: Callable[[Any, Any, np.ndarray | None], dict[str, float]] | None = None

    @property
    def supervised(self) -> bool:
        """Whether it can learn a target (False: it takes features only)."""
        return any(task in SUPERVISED for task in self.tasks)

    def __post_init__(self) -> None:
        if (self.build is None) == (self.fit is None):
            raise TypeError("an Algorithm takes exactly one of build= and fit=")
        if self.grows is not None and self.build is None:
            raise TypeError("grows= needs build=: the plumbing grows the model it fits")
        if self.distributed not in DISTRIBUTED:
            raise TypeError(f"distributed must be one of {DISTRIBUTED}, got {self.distributed!r}")
        if self.distributed == "data_parallel" and self.build is None:
            raise TypeError('distributed="data_parallel" needs build=: the plumbing fits the model across hosts')
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise TypeError(f"tasks must be some of {TASKS}, got {self.tasks!r}")


def text_columns(features: pd.DataFrame) -> list:
    """Columns of text (pandas read them as objects): categories, or free text."""
    return [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c].dtype)]


def tabular(features: pd.DataFrame, estimator, scale: bool = False):
    """`estimator` behind the preprocessing the table needs, or the bare estimator when it needs
    none (the fastest to serve).

    Text columns become categories (ordinal codes, unknown and missing as -1; with `scale`,
    one-hot). Missing numbers are imputed (median) only where the estimator cannot take NaN;
    with `scale`, numbers are also standardised. Without text columns the steps select no
    columns by name, so the model also takes a plain array.
    """
    categorical = text_columns(features)
    numeric = [c for c in features.columns if c not in categorical]
    allow_nan = bool(estimator.__sklearn_tags__().input_tags.allow_nan)
    has_nan = bool(features[numeric].isna().to_numpy().any()) if numeric else False
    if scale:
        numeric_steps = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    elif allow_nan or not has_nan:
        numeric_steps = "passthrough"
    else:
        numeric_steps = SimpleImputer(strategy="median")
    if not categorical:
        return estimator if numeric_steps == "passthrough" else Pipeline([("preprocess", numeric_steps),
                                                                           ("model", estimator)])
    encoder = (OneHotEncoder(handle_unknown="ignore") if scale else
               OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1))
    text_steps = make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"), encoder)
    preprocess = ColumnTransformer([("numeric", numeric_steps, numeric), ("categorical", text_steps, categorical)],
                                   remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])
