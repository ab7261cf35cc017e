"""Forks of the container as a user makes one: `algo/` copied, `algorithm.py` replaced (over the
tests' own fork, so the predictor is the tests' too, whatever a fork did to `algo/predictor.py`).

The plumbing's tests train with `FIXTURE` (below), a catalogue unlike the bundled one, so they
hold for any fork: `load()` imports it in-process, `make_fork()` writes it into a copy of `algo/`
whose real `train` then runs as a subprocess (`run_train`).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

from support import host_env, plumbing_algo

FIXTURE = textwrap.dedent('''\
    """A fork's catalogue: a KNN pipeline, a text pipeline, a model that is no scikit-learn
    estimator, a forest that grows with checkpoints, and one that does not build."""

    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from sagemaker_byo import Algorithm, Param, tabular


    class Quantile:
        """Predicts one number, a quantile of the training target: not a scikit-learn estimator."""

        def __init__(self, value):
            self.value = value

        def predict(self, features):
            return np.full(len(features), self.value)


    def forest(params, task, features):
        estimator = RandomForestClassifier if task == "classification" else RandomForestRegressor
        return tabular(features, estimator(**params))


    ALGORITHMS = {
        "knn": Algorithm(
            {"n_neighbors": Param(int, 5, low=1)},
            build=lambda params, task, features: make_pipeline(StandardScaler(), KNeighborsClassifier(**params)),
            tasks=("classification",),
        ),
        "words": Algorithm(
            {"column": Param(str, "review"), "C": Param(float, 10.0, low=1e-9)},
            build=lambda params, task, features: make_pipeline(
                ColumnTransformer([("words", TfidfVectorizer(), params["column"])]),
                LogisticRegression(C=params["C"], max_iter=1000)),
            tasks=("classification",),
        ),
        "quantile": Algorithm(
            {"q": Param(float, 0.5, low=0.0, high=1.0)},
            fit=lambda params, task, features, target: Quantile(float(np.quantile(target, params["q"]))),
            tasks=("regression",),
        ),
        "forest": Algorithm(
            {
                "n_estimators": Param(int, 20, low=1),
                "max_depth": Param(int, None, low=1, nullable=True),
                "criterion": Param(str, None, choices=("gini", "entropy", "squared_error"), nullable=True),
                "class_weight": Param(str, None, choices=("balanced",), nullable=True, tasks=("classification",)),
                "random_state": Param(int, 0, nullable=True),
            },
            build=forest,
            grows="n_estimators",
        ),
        "misspelt": Algorithm(  # declares a parameter its estimator does not take
            {"depth": Param(int, 3, low=1)},
            build=lambda params, task, features: DecisionTreeClassifier(**params),
            tasks=("classification",),
        ),
    }
''')


# A fork whose fit allocates until the kernel kills it for memory (tests of a memory limit).
GREEDY = textwrap.dedent('''\
    """A fork whose fit keeps allocating (and touching) memory until the kernel stops it."""

    import numpy as np

    from sagemaker_byo import Algorithm, Param


    def grow(params, task, features, target):
        held = []
        for _ in range(params["steps"]):
            held.append(np.ones(16 * 2**20, dtype=np.uint8))  # written, so the pages are really used
        return held


    ALGORITHMS = {
        "greedy": Algorithm({"steps": Param(int, 10_000, low=1)}, fit=grow, tasks=("classification",)),
    }
''')


def load(source: str = FIXTURE, name: str = "fixture_algorithm") -> ModuleType:
    """The catalogue imported as module `name` (registered, so its models pickle)."""
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def make_fork(destination: Path, source: str = FIXTURE) -> Path:
    """A copy of the tests' `algo/` with `algorithm.py` replaced by `source`; returns the copy's folder."""
    shutil.copytree(plumbing_algo(), destination, ignore=shutil.ignore_patterns("__pycache__"))
    (destination / "algorithm.py").write_text(source)
    return destination


def run_train(fork: Path, base_dir: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """The fork's own `train`, as SageMaker runs it, against `base_dir` as /opt/ml."""
    return subprocess.run([str(fork / "train")], env=host_env(base_dir, **env), capture_output=True, text=True,
                          timeout=timeout)


def start_train(fork: Path, base_dir: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as stream:
        return subprocess.Popen([str(fork / "train")], env=host_env(base_dir), stdout=stream,
                                stderr=subprocess.STDOUT)
