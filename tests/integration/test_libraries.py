"""A fork whose algorithm needs a library the image lacks: the real `train` fails with a reason
that names the library and where to add it (requirements.in for a Python package,
system-packages.txt for a system library one loads), never "a bug in the training code"."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from forks import make_fork, run_train

IMPORTS_A_MISSING_PACKAGE = textwrap.dedent('''\
    import sagemaker_byo_absent_booster  # a package this fork forgot in requirements.in

    ALGORITHMS = {}
''')

LOADS_A_MISSING_SYSTEM_LIBRARY = textwrap.dedent('''\
    import ctypes

    from sklearn.tree import DecisionTreeClassifier

    from sagemaker_byo import Algorithm


    def build(params, task, features):
        ctypes.CDLL("libsagemaker-byo-absent.so.1")  # as a wheel loads its OpenMP runtime
        return DecisionTreeClassifier()


    ALGORITHMS = {"tree": Algorithm({}, build=build, tasks=("classification",))}
''')


def job(tmp_path):
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data" / "training").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({}))
    pd.DataFrame({"label": ["a", "b"] * 10, "x": range(20)}).to_csv(
        base / "input" / "data" / "training" / "rows.csv", index=False, header=False)
    return base


@pytest.mark.parametrize(("source", "expected"), [
    (IMPORTS_A_MISSING_PACKAGE,
     "UserError: the algorithm needs a library: the Python package that provides 'sagemaker_byo_absent_booster' "
     "is not installed in this image (ModuleNotFoundError: No module named 'sagemaker_byo_absent_booster'); "
     "add it to requirements.in, run make lock and rebuild the image"),
    (LOADS_A_MISSING_SYSTEM_LIBRARY,
     "UserError: the algorithm needs a library: the system library libsagemaker-byo-absent.so.1 is not installed "
     "in this image (OSError: libsagemaker-byo-absent.so.1: cannot open shared object file"),
])
def test_a_missing_library_fails_the_job_naming_it_and_where_to_add_it(tmp_path, source, expected):
    fork = make_fork(tmp_path / "algo", source)
    base = job(tmp_path)
    result = run_train(fork, base)
    assert result.returncode == 1, result.stderr
    reason = (base / "output" / "failure").read_text()
    assert reason.startswith(expected), reason
    assert "a bug in the training code" not in reason
    if source is LOADS_A_MISSING_SYSTEM_LIBRARY:
        assert reason.rstrip().endswith("add the Debian package that provides it to system-packages.txt and "
                                        "rebuild the image"), reason
    assert not (base / "model" / "model.joblib").exists()
