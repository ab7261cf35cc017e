"""The plumbing tests' catalogue: the algorithms their `train` offers.

`ALGORITHMS` maps the `algorithm` hyperparameter's values to an `Algorithm` (the first entry is
the default). Each declares its own typed hyperparameters (`Param(type, default, low=, high=,
choices=, nullable=, tasks=)`; null leaves the estimator's default) and either `build(params,
task, features)`, returning an unfitted scikit-learn estimator or Pipeline that the plumbing
fits, or `fit(params, task, features, target)`, returning a fitted model with `predict`. `tasks`
says which of classification and regression it supports; `grows` names the parameter warm_start
grows, for checkpoints. Everything else (channels, task, metrics, saving) is sagemaker_byo's.

The plumbing tests' own copy (tests/fixture_fork/): the bundled file as it was when the
tests were written, frozen, so that a fork's edits to algo/algorithm.py change none of them.
"""

from __future__ import annotations

from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sagemaker_byo import Algorithm, Param, UserError, tabular

CLASSIFICATION_ONLY = ("classification",)
RANDOM_STATE = {"random_state": Param(int, 0, low=0, high=2**32 - 1, nullable=True)}
CLASS_WEIGHT = {"class_weight": Param(str, None, choices=("balanced",), nullable=True, tasks=CLASSIFICATION_ONLY)}
TREE = {
    **RANDOM_STATE,
    # scikit-learn refuses a criterion of the other task when the model is fitted.
    "criterion": Param(str, None, nullable=True, choices=(
        "gini", "entropy", "log_loss", "squared_error", "absolute_error", "friedman_mse", "poisson")),
    "max_depth": Param(int, None, low=1, nullable=True),
    "max_leaf_nodes": Param(int, None, low=2, nullable=True),
    "min_samples_split": Param(int, 2, low=2),
    "min_samples_leaf": Param(int, 1, low=1),
    "max_features": Param(str, None, choices=("sqrt", "log2", "all"), nullable=True),
    **CLASS_WEIGHT,
}
FOREST = {
    **TREE,
    "n_estimators": Param(int, 100, low=1, high=100_000),
    "bootstrap": Param(bool, True),
    "max_samples": Param(float, None, low=0.0, high=1.0, nullable=True),
    "n_jobs": Param(int, -1, low=-1),
}


def lightgbm(params, task, features):
    """LightGBM's scikit-learn estimator; imported here, so other algorithms and serving never load it.
    Missing numbers stay missing (LightGBM handles them), text columns are ordinal-encoded."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    estimator = LGBMClassifier if task == "classification" else LGBMRegressor
    return tabular(features, estimator(verbose=-1, **params))


LIGHTGBM = {
    **RANDOM_STATE,
    "n_estimators": Param(int, 100, low=1, high=100_000),
    "learning_rate": Param(float, 0.1, low=1e-6, high=10.0),
    "num_leaves": Param(int, 31, low=2, high=131_072),
    "max_depth": Param(int, -1, low=-1),
    "min_child_samples": Param(int, 20, low=1),
    "subsample": Param(float, 1.0, low=0.01, high=1.0),
    "subsample_freq": Param(int, 0, low=0),
    "colsample_bytree": Param(float, 1.0, low=0.01, high=1.0),
    "reg_alpha": Param(float, 0.0, low=0.0),
    "reg_lambda": Param(float, 0.0, low=0.0),
    **CLASS_WEIGHT,
}


def trees(classifier, regressor):
    """`build` for a tree or a forest: text columns ordinal-encoded, missing numbers kept."""
    def build(params, task, features):
        if params.get("max_features") == "all":
            params = {**params, "max_features": None}
        if params.get("max_samples") is not None and not params.get("bootstrap", True):
            raise UserError("hyperparameter 'max_samples' needs bootstrap=true")
        estimator = classifier if task == "classification" else regressor
        return tabular(features, estimator(**params))
    return build


ALGORITHMS = {
    "decision_tree": Algorithm(TREE, build=trees(DecisionTreeClassifier, DecisionTreeRegressor)),
    "random_forest": Algorithm(FOREST, build=trees(RandomForestClassifier, RandomForestRegressor),
                               grows="n_estimators", distributed="joblib"),
    "extra_trees": Algorithm({**FOREST, "bootstrap": Param(bool, False)},
                             build=trees(ExtraTreesClassifier, ExtraTreesRegressor), grows="n_estimators",
                             distributed="joblib"),
    "gradient_boosting": Algorithm(
        {
            **RANDOM_STATE,
            "learning_rate": Param(float, 0.1, low=1e-6, high=10.0),
            "max_iter": Param(int, 100, low=1, high=100_000),
            "max_leaf_nodes": Param(int, 31, low=2, nullable=True),
            "max_depth": Param(int, None, low=1, nullable=True),
            "min_samples_leaf": Param(int, 20, low=1),
            "l2_regularization": Param(float, 0.0, low=0.0),
            "max_features": Param(float, 1.0, low=0.01, high=1.0),
            "early_stopping": Param(bool, False),
            **CLASS_WEIGHT,
        },
        build=lambda params, task, features: tabular(features, (
            HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor)(**params)),
        grows="max_iter",
    ),
    # On several hosts: data-parallel through lightgbm.dask, each host training on its own rows.
    "lightgbm": Algorithm(LIGHTGBM, build=lightgbm, distributed="data_parallel"),
    "linear": Algorithm(
        {
            **RANDOM_STATE,
            "C": Param(float, 1.0, low=1e-9, tasks=CLASSIFICATION_ONLY),
            "alpha": Param(float, 1.0, low=0.0, tasks=("regression",)),
            "max_iter": Param(int, 1000, low=1, high=1_000_000),
            "fit_intercept": Param(bool, True),
            **CLASS_WEIGHT,
        },
        build=lambda params, task, features: tabular(features, (
            LogisticRegression if task == "classification" else Ridge)(**params), scale=True),
    ),
}
