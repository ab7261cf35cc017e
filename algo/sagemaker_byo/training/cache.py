"""Parsed channels kept between the jobs of a SageMaker warm pool.

SageMaker names a folder that outlives the job, `SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY`,
when the job runs on a kept pool (a tuning job, or repeated jobs with `KeepAlivePeriodInSeconds`).
`read_table` is `channels.read_table` with a copy of each parsed table kept there as an Arrow IPC
file (read back memory-mapped, with its dtypes), keyed on the files' names, sizes and modification
times, the reading options and the reader's own code: a later job with the same inputs reads the
copy, one whose inputs changed reads afresh. A copy that cannot be read or written (corrupt, disk
full) is skipped with a warning; the job never fails for the cache. Without the variable nothing
is cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from .. import settings
from . import channels

log = logging.getLogger("train")

FORMAT = 1  # of the files below; a change makes every earlier copy a miss
FOLDER = "sagemaker-byo-channels"  # inside the warm pool's folder, which the user's code may share
SUFFIX = ".arrow"
KEEP = 8  # copies kept, newest first: a few channels of a few data sets, not every one ever read
META = b"sagemaker_byo"


def read_table(name: str, root: Path, **options: Any) -> channels.Table:
    """`channels.read_table(name, root, **options)`, through the warm pool's cache when there is one."""
    folder = settings.warm_pool_cache()
    if folder is None or options.get("mode", "File") == "Pipe":  # a pipe's bytes have no name, size or time
        return channels.read_table(name, root, **options)
    try:
        files = options.get("files")
        files = channels.channel_files(name, root) if files is None else files
        key = _key(name, files, options)
    except Exception:  # noqa: BLE001 - a channel that cannot be listed: the reader says why
        return channels.read_table(name, root, **options)
    path = folder / FOLDER / f"{key}{SUFFIX}"
    if path.exists():
        started = time.monotonic()
        table = _load(path)
        if table is not None:
            log.info("channel %s: %d rows from the warm pool cache %s (%.1fs)", name, table.rows, path,
                     time.monotonic() - started)
            return table
    table = channels.read_table(name, root, **options)
    _store(path, table)
    return table


def _key(name: str, files: list[Path], options: dict[str, Any]) -> str:
    stated = []
    for path in files:
        info = Path(path).stat()
        stated.append([str(Path(path).resolve()), info.st_size, info.st_mtime_ns])
    wanted = {key: value for key, value in options.items() if key != "files"}
    text = json.dumps({"format": FORMAT, "reader": _reader_version(), "channel": name, "files": stated,
                       "options": wanted}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@cache
def _reader_version() -> str:
    """The reader's code (the whole package's, so a helper it calls counts too) and the libraries
    it parses with: a new image reads afresh."""
    import pyarrow  # noqa: PLC0415 - only where there is a cache

    digest = hashlib.sha256()
    for path in sorted(Path(channels.__file__).parent.parent.rglob("*.py")):
        digest.update(path.read_bytes())
    code = digest.hexdigest()[:16]
    return f"{code} pandas {pd.__version__} pyarrow {pyarrow.__version__}"


def _columns(frame: pd.DataFrame) -> list | None:
    names = list(frame.columns)
    if all(isinstance(n, str) for n in names) or all(isinstance(n, int) and not isinstance(n, bool) for n in names):
        return names
    return None  # Arrow keeps text names only; others are not restored exactly, so not cached


def _store(path: Path, table: channels.Table) -> None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.feather as feather  # noqa: PLC0415

    names = _columns(table.frame)
    if names is None:
        return
    tmp = None
    try:
        arrow = pa.Table.from_pandas(table.frame, preserve_index=False)
        ours = json.dumps({"columns": names, "sources": table.sources, "starts": table.starts, "rows": table.rows})
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), META: ours.encode()})
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".writing-", suffix=".tmp", dir=path.parent)
        os.close(fd)
        feather.write_feather(arrow, tmp, compression="uncompressed")
        os.replace(tmp, path)  # whole or absent: a job stopped mid-write leaves no half copy under the key
        tmp = None
        log.info("channel kept in the warm pool cache: %s (%.1f MiB)", path, path.stat().st_size / 2**20)
        _trim(path.parent)
    except (OSError, pa.ArrowException, TypeError, ValueError) as error:
        log.warning("could not keep the channel in the warm pool cache %s (%s); the job goes on without it",
                    path.parent, error)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _load(path: Path) -> channels.Table | None:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.feather as feather  # noqa: PLC0415

    try:
        arrow = feather.read_table(path, memory_map=True)
        ours = json.loads((arrow.schema.metadata or {})[META])
        frame = arrow.to_pandas()
        if len(frame) != ours["rows"] or len(frame.columns) != len(ours["columns"]):
            raise ValueError(f"{len(frame)} rows, {len(frame.columns)} columns where it recorded "
                             f"{ours['rows']} and {len(ours['columns'])}")
        frame.columns = ours["columns"]
        table = channels.Table(frame, list(ours["sources"]), [int(s) for s in ours["starts"]])
    except (OSError, KeyError, ValueError, TypeError, pa.ArrowException) as error:
        log.warning("ignoring the warm pool cache's copy %s, which cannot be read (%s); reading the channel afresh",
                    path, error)
        path.unlink(missing_ok=True)
        return None
    try:
        os.utime(path)  # in use: kept longest by _trim
    except OSError:
        pass
    return table


def _trim(folder: Path) -> None:
    """Keep the KEEP copies used last; a copy's time is that of its last write or read."""
    copies = []
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            copies.append((path.stat().st_mtime, path))
        except OSError:
            continue
    for _, old in sorted(copies, reverse=True)[KEEP:]:
        old.unlink(missing_ok=True)
