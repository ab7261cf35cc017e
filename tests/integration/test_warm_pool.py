"""The real `algo/train` twice on a warm pool (SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY set, as
SageMaker sets it on a kept pool): the second job reads its channels from the cache and trains
the same model; a job whose data changed reads afresh; without the variable nothing is kept."""

from __future__ import annotations

import json
import shutil

from support import copy_test_dir, run_train

POOL_VARIABLE = "SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"


def model_description(base_dir) -> dict:
    description = json.loads((base_dir / "model" / "model.json").read_text())
    description.pop("versions", None)
    description.pop("trained_at", None)
    return description


def test_a_second_job_on_the_pool_reads_its_channels_from_the_cache_and_trains_the_same_model(tmp_path):
    pool = tmp_path / "warmpoolcache"
    pool.mkdir()
    first = copy_test_dir(tmp_path / "first")
    result = run_train(first, **{POOL_VARIABLE: str(pool)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "from the warm pool cache" not in result.stderr
    kept = sorted(p.name for p in pool.rglob("*.arrow"))
    assert len(kept) == 2, kept  # training and validation

    # The next job of the pool: SageMaker lays /opt/ml out afresh; the data is where it was.
    shutil.rmtree(first / "model")
    shutil.rmtree(first / "output")
    (first / "model").mkdir()
    again = run_train(first, **{POOL_VARIABLE: str(pool)})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("from the warm pool cache") == 2, again.stderr[-3000:]
    second = copy_test_dir(tmp_path / "reference")
    assert run_train(second).returncode == 0
    assert model_description(first) == model_description(second)
    assert (first / "model" / "model.joblib").exists()


def test_a_job_whose_data_changed_reads_afresh(tmp_path):
    pool = tmp_path / "warmpoolcache"
    pool.mkdir()
    base = copy_test_dir(tmp_path / "ml")
    assert run_train(base, **{POOL_VARIABLE: str(pool)}).returncode == 0
    rows = base / "input" / "data" / "training" / "rows.csv"
    rows.write_text("\n".join(rows.read_text().splitlines()[:-10]) + "\n")  # ten rows fewer
    again = run_train(base, **{POOL_VARIABLE: str(pool)})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("from the warm pool cache") == 1  # validation only
    description = json.loads((base / "model" / "model.json").read_text())
    assert description["training_rows"] == len(rows.read_text().splitlines())


def test_without_the_variable_nothing_is_kept(tmp_path):
    base = copy_test_dir(tmp_path / "ml")
    before = sorted(tmp_path.rglob("*"))
    result = run_train(base)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warm pool" not in result.stderr
    assert not [p for p in tmp_path.rglob("*") if p not in before and p.suffix == ".arrow"]
