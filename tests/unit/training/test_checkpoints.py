"""Checkpoints for Spot training: saved atomically, the newest two kept, and on resume the newest
one of this job set-up that loads; damaged or foreign checkpoints are skipped, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sagemaker_byo import settings
from sagemaker_byo.training.checkpoints import KEEP, Store, directory, fingerprint


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("state", [
    {"trees": [1, 2, 3]},
    ("preprocessing", None),
    None,
])
def test_a_saved_state_comes_back_from_latest(tmp_path, state):
    store = Store(tmp_path, "abc")
    path = store.save(7, state)
    saved = store.latest()
    assert (saved.step, saved.state, saved.path) == (7, state, path)


def test_latest_is_none_without_checkpoints(tmp_path):
    assert Store(tmp_path / "absent", "abc").latest() is None
    assert Store(tmp_path, "abc").latest() is None


def test_latest_is_the_highest_step(tmp_path):
    store = Store(tmp_path, "abc")
    for step in (10, 20, 30):
        store.save(step, f"state {step}")
    assert store.latest().step == 30
    assert store.latest().state == "state 30"


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(b""),  # a stop mid-write by another writer
    lambda path: path.write_bytes(b"not a joblib file"),
    lambda path: path.write_bytes(path.read_bytes()[:20]),  # truncated
])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    store = Store(tmp_path, "abc")
    store.save(10, "older")
    damage(store.save(20, "newer"))
    saved = store.latest()
    assert (saved.step, saved.state) == (10, "older")


def test_a_checkpoint_of_another_job_set_up_is_ignored(tmp_path):
    Store(tmp_path, "mine").save(10, "mine")
    Store(tmp_path, "foreign").save(20, "foreign")
    assert Store(tmp_path, "mine").latest().state == "mine"
    assert Store(tmp_path, "nobody").latest() is None


@pytest.mark.parametrize("saves", [1, 2, 3, 7])
def test_only_the_newest_two_are_kept_and_no_temporary_file_is_left(tmp_path, saves):
    store = Store(tmp_path, "abc")
    for step in range(1, saves + 1):
        store.save(step, step)
    expected = [f"checkpoint-{step:09d}.joblib" for step in range(max(1, saves - KEEP + 1), saves + 1)]
    assert KEEP == 2
    assert names(tmp_path) == expected  # hidden temporary files included


def test_save_creates_the_folder(tmp_path):
    Store(tmp_path / "a" / "b", "abc").save(1, "x")
    assert names(tmp_path / "a" / "b") == ["checkpoint-000000001.joblib"]


@pytest.mark.parametrize(("left", "right", "same"), [
    ({"params": {"a": 1}, "rows": 10}, {"rows": 10, "params": {"a": 1}}, True),  # order does not matter
    ({"params": {"a": 1}, "rows": 10}, {"params": {"a": 2}, "rows": 10}, False),
    ({"params": {"a": 1}, "rows": 10}, {"params": {"a": 1}, "rows": 11}, False),
])
def test_fingerprint_depends_on_the_parts_not_their_order(left, right, same):
    assert (fingerprint(**left) == fingerprint(**right)) is same
    assert len(fingerprint(**left)) == 16


@pytest.mark.parametrize(("config", "folder", "expected"), [
    (None, False, None),  # checkpointing off
    (None, True, "checkpoints"),  # /opt/ml/checkpoints exists
    ({"LocalPath": "{base}/elsewhere"}, False, "elsewhere"),
    ({}, False, "checkpoints"),  # a config without LocalPath: the default folder
    ("not json", False, "checkpoints"),
])
def test_directory_follows_checkpointconfig_json(tmp_path, config, folder, expected):
    paths = settings.paths({settings.BASE_DIR: str(tmp_path)})
    paths.input_config.mkdir(parents=True)
    if folder:
        paths.checkpoints.mkdir()
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config).replace("{base}", str(tmp_path))
        paths.checkpoint_config.write_text(text)
    found = directory(paths)
    if expected is None:
        assert found is None
    else:
        assert found == tmp_path / expected and found.is_dir()
