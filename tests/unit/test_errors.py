"""errors.missing_library: which failures mean a library is not installed, and what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagemaker_byo.errors import missing_library
from sagemaker_byo.serving.pipeline import Hooks, load_model


def raised(error: BaseException, wrapped_in: type[Exception] | None = None) -> BaseException:
    try:
        try:
            raise error
        except BaseException as inner:
            if wrapped_in is None:
                raise
            raise wrapped_in(f"cannot load ({inner})") from inner
    except BaseException as outer:  # noqa: BLE001 - the test hands it back
        return outer


@pytest.mark.parametrize(("error", "expected"), [
    (ModuleNotFoundError("No module named 'xgboost'", name="xgboost"),
     "the Python package that provides 'xgboost' is not installed in this image (ModuleNotFoundError: No module "
     "named 'xgboost'); add it to requirements.in, run make lock and rebuild the image"),
    (ModuleNotFoundError("No module named 'lightgbm.basic'", name="lightgbm.basic"),
     "the Python package that provides 'lightgbm' is not installed"),
    (ImportError("cannot import name 'Booster' from 'xgboost'"), "a Python package it imports is not installed"),
    (OSError("libgomp.so.1: cannot open shared object file: No such file or directory"),
     "the system library libgomp.so.1 is not installed in this image (OSError: libgomp.so.1: cannot open shared "
     "object file: No such file or directory); add the Debian package that provides it to system-packages.txt"),
])
def test_a_missing_library_is_named_with_where_to_add_it(error, expected):
    assert missing_library(raised(error)).startswith(expected)


def test_a_missing_library_is_found_behind_the_error_it_caused():
    outer = raised(ModuleNotFoundError("No module named 'xgboost'", name="xgboost"), wrapped_in=RuntimeError)
    assert "'xgboost' is not installed" in missing_library(outer)


@pytest.mark.parametrize("error", [ValueError("bad"), OSError("disk full"),
                                   ModuleNotFoundError("No module named 'sagemaker_byo.x'", name="sagemaker_byo.x")])
def test_other_failures_are_not_a_missing_library(error):
    assert missing_library(raised(error)) is None


def test_a_model_fn_that_needs_a_missing_package_says_which_and_where_to_add_it(tmp_path: Path):
    def model_fn(model_dir: str):
        try:
            import sagemaker_byo_absent_booster  # noqa: F401
        except ImportError as error:  # as predictor.py's model_fn wraps joblib.load's errors
            raise RuntimeError(f"{model_dir}/model.joblib cannot be loaded ({error})") from error

    hooks = Hooks(model_fn, None, None, None, accept_types=("text/csv",))
    loaded = load_model(hooks, tmp_path)
    assert not loaded.ready
    assert loaded.error.startswith("model_fn needs a library: the Python package that provides "
                                   "'sagemaker_byo_absent_booster' is not installed"), loaded.error
    assert "requirements.in" in loaded.error
