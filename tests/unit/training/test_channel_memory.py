"""A channel too large for the container's memory is refused before it is read, naming the data's
size, the memory the container has and the ways out; one that fits is read. The container's limit
is a cgroup v2 folder the test writes (resources reads SAGEMAKER_CGROUP_ROOT and
SAGEMAKER_PROC_SELF_CGROUP), so the limit and the memory in use are the test's to set."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sagemaker_byo.errors import UserError
from sagemaker_byo.training import channels
from sagemaker_byo.training.channels import read_table

MIB = 2 ** 20
ROWS = 20_000


def numbers(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.random((rows, 10)).round(5), columns=[f"x{i}" for i in range(10)])
    frame.insert(0, "y", rng.integers(0, 2, rows))
    frame["colour"] = rng.choice(["red", "green", "blue"], rows)
    return frame


def fake_cgroup(tmp_path: Path, monkeypatch, limit: int, used: int) -> None:
    """This process in a cgroup v2 of `limit` bytes with `used` in use."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{used}\n")
    (root / "memory.stat").write_text("inactive_file 0\n")
    (tmp_path / "self-cgroup").write_text("0::/\n")
    monkeypatch.setenv("SAGEMAKER_CGROUP_ROOT", str(root))
    monkeypatch.setenv("SAGEMAKER_PROC_SELF_CGROUP", str(tmp_path / "self-cgroup"))


def write(root: Path, name: str, frame: pd.DataFrame) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    elif name.endswith(".gz"):
        path.write_bytes(gzip.compress(frame.to_csv(index=False, header=False).encode()))
    else:
        frame.to_csv(path, index=False, header=False)
    return path


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz", "data.parquet"])
def test_the_estimate_of_a_channel_in_memory_is_close_to_what_it_takes(tmp_path, name):
    path = write(tmp_path / "training", name, numbers())
    parquet = name.endswith(".parquet")
    estimate = channels._estimate([path], parquet, False, None, True)
    actual = read_table("training", path.parent).frame.memory_usage(deep=True).sum()
    assert 0.75 * actual <= estimate <= 1.5 * actual, (estimate, actual)


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz", "data.parquet"])
def test_a_channel_larger_than_the_free_memory_is_refused_before_reading_naming_sizes_and_ways_out(
        tmp_path, monkeypatch, name):
    path = write(tmp_path / "training", name, numbers())
    fake_cgroup(tmp_path, monkeypatch, limit=200 * MIB, used=199 * MIB)
    read = []
    monkeypatch.setattr(channels, "_parse_arrow", lambda *args: read.append(args))
    with pytest.raises(UserError) as raised:
        read_table("training", path.parent)
    message = str(raised.value)
    kind = "Parquet" if name.endswith(".parquet") else "CSV"
    assert message.startswith(f"channel 'training' is too large for this container's memory: its data (1 {kind} file, ")
    assert "once read, and the container has 200 MiB (cgroup v2 memory.max), 1 MiB of it free" in message
    assert "an instance with more memory" in message and "instance_count > 1" in message
    assert "trains across hosts" in message
    assert not read  # refused before any file was parsed


def test_a_channel_that_fits_in_the_free_memory_is_read(tmp_path, monkeypatch):
    path = write(tmp_path / "training", "data.csv", numbers())
    actual = read_table("training", path.parent).frame.memory_usage(deep=True).sum()
    fake_cgroup(tmp_path, monkeypatch, limit=1000 * MIB, used=1000 * MIB - int(1.6 * actual))
    assert read_table("training", path.parent).rows == ROWS


def test_the_memory_a_cgroup_uses_counts_against_its_limit(tmp_path, monkeypatch):
    path = write(tmp_path / "training", "data.csv", numbers())
    fake_cgroup(tmp_path, monkeypatch, limit=1000 * MIB, used=10 * MIB)
    assert read_table("training", path.parent).rows == ROWS
    (tmp_path / "cgroup" / "memory.current").write_text(f"{1000 * MIB}\n")
    with pytest.raises(UserError, match="0 MiB of it free"):
        read_table("training", path.parent)


def test_every_file_of_a_channel_counts(tmp_path, monkeypatch):
    root = tmp_path / "training"
    for index in range(4):
        write(root, f"part-{index}.csv", numbers(seed=index))
    one = channels._estimate([root / "part-0.csv"], False, False, None, True)
    assert channels._estimate(sorted(root.iterdir()), False, False, None, True) == pytest.approx(4 * one, rel=0.01)
    fake_cgroup(tmp_path, monkeypatch, limit=1000 * MIB, used=1000 * MIB - 2 * one)
    with pytest.raises(UserError, match=r"its data \(4 CSV files, "):
        read_table("training", root)


def test_piped_data_too_large_for_memory_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    data = numbers().to_csv(index=False, header=False).encode()
    fake_cgroup(tmp_path, monkeypatch, limit=200 * MIB, used=200 * MIB)
    monkeypatch.setattr(channels, "_read_pipe", lambda name, fifo: data)
    with pytest.raises(UserError, match=r"its data \(\d+ MiB from its pipe\) takes about"):
        read_table("training", tmp_path / "training", mode="Pipe")
