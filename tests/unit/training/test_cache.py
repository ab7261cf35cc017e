"""The warm pool's cache of parsed channels: a second read of the same files comes from the cache,
changed files or options read afresh, a corrupt or full cache is skipped with a warning, and
nothing is kept without SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY."""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest

from sagemaker_byo import settings
from sagemaker_byo.training import cache, channels

ROWS = "cat,1.5,007,x\ndog,2.5,008,\nemu,3.5,009,z\n"


@pytest.fixture
def channel(tmp_path) -> Path:
    root = tmp_path / "data" / "training"
    root.mkdir(parents=True)
    (root / "a.csv").write_text(ROWS)
    (root / "b.csv").write_text("fox,4.5,010,w\n")
    return root


@pytest.fixture
def pool(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "warmpoolcache"
    folder.mkdir()
    monkeypatch.setenv(settings.WARM_POOL_CACHE, str(folder))
    return folder


def copies(pool: Path) -> list[Path]:
    return sorted((pool / cache.FOLDER).glob("*.arrow")) if (pool / cache.FOLDER).is_dir() else []


def same(left: channels.Table, right: channels.Table) -> None:
    pd.testing.assert_frame_equal(left.frame, right.frame)  # values, dtypes, column names
    assert (left.sources, left.starts) == (right.sources, right.starts)


def rewrite_keeping_size_and_time(path: Path, text: str) -> None:
    """New content under the same name, size and modification time: what the key cannot see, so
    a read that returns the old content came from the cache."""
    info = path.stat()
    assert len(text.encode()) == info.st_size
    path.write_text(text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_second_read_of_the_same_files_comes_from_the_cache_with_the_same_table(channel, pool, caplog):
    first = cache.read_table("training", channel, target=0)
    same(first, channels.read_table("training", channel, target=0))
    assert len(copies(pool)) == 1
    rewrite_keeping_size_and_time(channel / "a.csv", ROWS.replace("cat", "cow"))
    with caplog.at_level(logging.INFO, logger="train"):
        second = cache.read_table("training", channel, target=0)
    same(second, first)  # "cat": the cached copy, not the file
    assert "from the warm pool cache" in caplog.text
    assert second.locate(3) == f"{channel / 'b.csv'}, data row 1"


@pytest.mark.parametrize("change", ["size", "time", "new file", "file removed"])
def test_changed_files_are_read_afresh(channel, pool, change):
    cache.read_table("training", channel, target=0)
    path = channel / "a.csv"
    if change == "size":
        path.write_text(ROWS + "gnu,5.5,011,v\n")
    elif change == "time":
        rewrite_keeping_size_and_time(path, ROWS.replace("cat", "cow"))
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    elif change == "new file":
        (channel / "c.csv").write_text("gnu,5.5,011,v\n")
    else:
        (channel / "b.csv").unlink()
    same(cache.read_table("training", channel, target=0), channels.read_table("training", channel, target=0))


@pytest.mark.parametrize("options", [
    {"header": True},
    {"target": 3},
    {"labelled": False},
])
def test_other_reading_options_are_kept_apart(channel, pool, options):
    for path in channel.iterdir():  # a header line, read as a row without header=True
        path.write_text("animal,score,code,tag\n" + path.read_text())
    cache.read_table("training", channel, target=0)
    same(cache.read_table("training", channel, **options), channels.read_table("training", channel, **options))
    assert len(copies(pool)) == 2


def test_a_corrupt_copy_is_skipped_with_a_warning_and_replaced(channel, pool, caplog):
    expected = cache.read_table("training", channel, target=0)
    [copy] = copies(pool)
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="train"):
        same(cache.read_table("training", channel, target=0), expected)
    assert "cannot be read" in caplog.text
    same(cache.read_table("training", channel, target=0), expected)  # the new copy reads
    assert len(copies(pool)) == 1


def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(channel, pool, caplog):
    (pool / cache.FOLDER).write_text("a file where the cache's folder goes")
    with caplog.at_level(logging.WARNING, logger="train"):
        table = cache.read_table("training", channel, target=0)
    same(table, channels.read_table("training", channel, target=0))
    assert "could not keep the channel in the warm pool cache" in caplog.text


@pytest.fixture
def full_disk(tmp_path, monkeypatch) -> Path:
    """A warm pool folder on a real file system of 64 KiB (tmpfs; we are root), unmounted after."""
    folder = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    monkeypatch.setenv(settings.WARM_POOL_CACHE, str(folder))
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_skipped_with_a_warning_and_leaves_no_partial_copy(channel, full_disk, caplog):
    (channel / "big.csv").write_text("".join(f"k{i},{i}.5,{i:03d},t\n" for i in range(20_000)))  # ~300 KB
    with caplog.at_level(logging.WARNING, logger="train"):
        table = cache.read_table("training", channel, target=0)
    same(table, channels.read_table("training", channel, target=0))
    assert "could not keep the channel in the warm pool cache" in caplog.text
    assert "No space left on device" in caplog.text
    assert list((full_disk / cache.FOLDER).iterdir()) == []


def test_nothing_is_cached_without_the_variable(channel, tmp_path, monkeypatch):
    monkeypatch.delenv(settings.WARM_POOL_CACHE, raising=False)
    before = sorted(tmp_path.rglob("*"))
    same(cache.read_table("training", channel, target=0), channels.read_table("training", channel, target=0))
    assert sorted(tmp_path.rglob("*")) == before


def test_the_cache_keeps_the_copies_used_last(tmp_path, pool):
    for index in range(cache.KEEP + 2):
        root = tmp_path / f"c{index}"
        root.mkdir()
        (root / "a.csv").write_text(ROWS)
        cache.read_table("training", root, target=0)
    assert len(copies(pool)) == cache.KEEP


def test_a_channel_that_does_not_read_fails_as_it_does_without_a_cache(tmp_path, pool):
    with pytest.raises(Exception, match="channel 'training' is missing") as uncached:
        channels.read_table("training", tmp_path / "absent")
    with pytest.raises(type(uncached.value), match="channel 'training' is missing"):
        cache.read_table("training", tmp_path / "absent")
