"""model.skops (sagemaker_byo.persistence): saved where skops can save the model, loaded with only
the types the image and the fork trust, and refused, without running anything, otherwise."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trap_model
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.preprocessing import FunctionTransformer

from sagemaker_byo import persistence, settings
from sagemaker_byo.serving.pipeline import Hooks, load_model


def refuse_model_fn(model_dir: str):
    raise AssertionError("model_fn must not be called in skops mode: it could unpickle")


def write_skops(folder: Path, model) -> Path:
    data, record = persistence.skops_dump(model)
    assert data is not None, record
    folder.mkdir(parents=True, exist_ok=True)
    (folder / persistence.SKOPS_FILE).write_bytes(data)
    return folder


def test_the_image_trusts_the_tree_node_stores_lightgbm_and_numpy_dtypes_beyond_skops_defaults():
    trusted = persistence.image_trusted_types()
    for name in ("sklearn.tree._tree.Tree", "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                 "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor", "lightgbm.basic.Booster",
                 "numpy.dtype", "collections.OrderedDict"):
        assert name in trusted
    assert not [name for name in trusted if name.startswith(("builtins.", "os.", "posix.", "subprocess."))]


@pytest.mark.parametrize("estimator", [
    RandomForestClassifier(n_estimators=5, random_state=0),
    HistGradientBoostingClassifier(max_iter=5),
], ids=["forest", "hist_gradient_boosting"])
def test_a_scikit_learn_model_loads_from_model_skops_and_predicts_as_it_did(tmp_path, iris, estimator):
    features, labels = iris
    model = estimator.fit(features, labels)
    loaded = persistence.load_skops(write_skops(tmp_path, model))
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


def test_a_lightgbm_model_loads_from_model_skops_and_predicts_as_it_did(tmp_path, iris):
    lightgbm = pytest.importorskip("lightgbm")
    features, labels = iris
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, labels)
    loaded = persistence.load_skops(write_skops(tmp_path, model))
    np.testing.assert_array_equal(loaded.predict(features), model.predict(features))


def test_a_model_skops_cannot_save_has_no_file_and_says_why():
    holds_a_buffer = FunctionTransformer(np.log1p, kw_args={"log": io.BytesIO()})
    data, record = persistence.skops_dump(holds_a_buffer)
    assert data is None
    assert record["file"] is None and "BytesIO" in record["reason"]


def test_a_saved_model_records_the_types_skops_does_not_trust_by_default(tmp_path):
    _data, record = persistence.skops_dump(trap_model.Trap(tmp_path / "marker"))
    assert record == {"file": "model.skops", "untrusted_types": ["trap_model.Trap"]}


def test_a_class_whose_loading_runs_code_is_refused_naming_it_and_where_to_declare_it_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    folder = write_skops(tmp_path / "model", trap_model.Trap(marker))
    with pytest.raises(persistence.UntrustedTypes) as refused:
        persistence.load_skops(folder)
    assert "trap_model.Trap" in str(refused.value)
    assert "TRUSTED_TYPES" in str(refused.value) and "predictor.py" in str(refused.value)
    assert not marker.exists()


def test_a_class_the_fork_declares_loads(tmp_path):
    marker = tmp_path / "marker"
    folder = write_skops(tmp_path / "model", trap_model.Trap(marker))
    loaded = persistence.load_skops(folder, ["trap_model.Trap"])
    assert isinstance(loaded, trap_model.Trap)
    assert marker.exists()  # declared trusted: its __setstate__ is the fork's own code, and it ran


def test_a_hand_made_file_naming_eval_is_refused(tmp_path):
    schema = {"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "__id__": 1,
              "content": {"f": {"__class__": "eval", "__module__": "builtins", "__loader__": "TypeNode",
                                "__id__": 2}},
              "key_types": {"__class__": "list", "__module__": "builtins", "__loader__": "ListNode", "__id__": 3,
                            "content": [{"__class__": "str", "__module__": "builtins", "__loader__": "TypeNode",
                                         "__id__": 4}]},
              "protocol": 2, "_skops_version": "0.16.0"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    (tmp_path / persistence.SKOPS_FILE).write_bytes(buffer.getvalue())
    with pytest.raises(persistence.UntrustedTypes, match=r"builtins\.eval"):
        persistence.load_skops(tmp_path)


def test_the_trusted_list_is_never_read_from_the_artifact(tmp_path):
    """model.json beside the file lists its types; the server trusts none of them for that."""
    marker = tmp_path / "marker"
    folder = write_skops(tmp_path / "model", trap_model.Trap(marker))
    declared = ["trap_model.Trap"]
    (folder / "model.json").write_text(json.dumps(
        {"skops": {"file": "model.skops", "untrusted_types": declared}, "trusted_types": declared}))
    hooks = Hooks(refuse_model_fn, None, None, None, accept_types=("text/csv",))
    loaded = load_model(hooks, folder, model_format="skops")
    assert not loaded.ready and "trap_model.Trap" in loaded.error
    assert not marker.exists()


def test_skops_mode_loads_model_skops_with_the_hooks_trusted_types_and_never_calls_model_fn(tmp_path, iris):
    features, labels = iris
    folder = write_skops(tmp_path / "model", RandomForestClassifier(n_estimators=3, random_state=0).fit(
        features, labels))
    loaded = load_model(Hooks(refuse_model_fn, None, None, None, accept_types=("text/csv",)), folder,
                        model_format="skops")
    assert loaded.ready, loaded.error
    trap = write_skops(tmp_path / "trap", trap_model.Trap(tmp_path / "marker"))
    hooks = Hooks(refuse_model_fn, None, None, None, accept_types=("text/csv",), trusted_types=("trap_model.Trap",))
    assert load_model(hooks, trap, model_format="skops").ready


def test_skops_mode_without_model_skops_is_a_missing_file_not_a_fallback_to_joblib(tmp_path, iris_model):
    import joblib

    joblib.dump(iris_model, tmp_path / "model.joblib")
    loaded = load_model(Hooks(refuse_model_fn, None, None, None, accept_types=("text/csv",)), tmp_path,
                        model_format="skops")
    assert loaded.error.startswith("FileNotFoundError") and "model.skops" in loaded.error


def test_joblib_is_the_default_model_format_and_skops_is_the_other():
    assert settings.serving({}).model_format == "joblib"
    assert settings.serving({settings.MODEL_FORMAT: " Skops "}).model_format == "skops"


def test_an_unknown_model_format_is_refused_naming_both():
    with pytest.raises(settings.SettingsError, match="joblib or skops"):
        settings.serving({settings.MODEL_FORMAT: "pickle"})

