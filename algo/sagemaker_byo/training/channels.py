"""Training channels: find the CSV data SageMaker hands over, read it, and say clearly what is wrong.

File and FastFile mode: every `.csv` and `.csv.gz` file under /opt/ml/input/data/<channel>
(recursively, in name order; hidden files skipped). Pipe mode: the FIFO
/opt/ml/input/data/<channel>_0 (the first epoch). SageMaker's CSV convention is no header; a
header row is read when the job says so. Numeric columns are stored as float32, the precision
tree ensembles compute in, which halves the memory of a large channel.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import stat
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError

log = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz")
SUPPORTED_CONTENT_TYPES = ("text/csv",)
FLOAT32_MAX = float(np.finfo(np.float32).max)
PIPE_OPEN_TIMEOUT = 60  # seconds to wait for SageMaker to create a channel's FIFO
CHUNK = 8 * 1024 * 1024


@dataclass
class Table:
    frame: pd.DataFrame
    sources: list[str]
    starts: list[int]  # the frame's first row from each source

    @property
    def rows(self) -> int:
        return len(self.frame)

    def locate(self, row: int) -> str:
        """Where a row of the frame came from: 'path, data row N'."""
        index = max(i for i, start in enumerate(self.starts) if start <= row)
        return f"{self.sources[index]}, data row {row - self.starts[index] + 1}"


def check_content_type(name: str, config: dict) -> int | None:
    """The channel's ContentType checked, and its `label_size` parameter (SageMaker's convention:
    `text/csv;label_size=0` is features only, N the first N columns are targets) or None where it
    gives none."""
    content_type = (config.get(name) or {}).get("ContentType")
    if not content_type:
        return None
    media_type, _, rest = str(content_type).partition(";")
    if media_type.strip().lower() not in SUPPORTED_CONTENT_TYPES:
        raise UserError(
            f"channel '{name}' has ContentType {content_type!r}; this algorithm reads "
            f"{', '.join(SUPPORTED_CONTENT_TYPES)} (set ContentType in the channel's configuration)"
        )
    parameters = {}
    for part in rest.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            parameters[key.strip().lower()] = value.strip().strip('"')
    if "label_size" not in parameters:
        return None
    value = parameters["label_size"]
    if not value.isdigit():
        raise UserError(f"channel '{name}' has ContentType {content_type!r}: label_size must be 0 (features "
                        f"only) or the number of target columns at the start of each row (1 or more), got {value}")
    return int(value)


def input_mode(name: str, config: dict) -> str:
    return str((config.get(name) or {}).get("TrainingInputMode") or "File")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def channel_files(name: str, root: Path, allow_none: bool = False) -> list[Path]:
    """The channel's CSV files; with `allow_none` (a host of several, which may get no share)
    an empty or absent folder gives none instead of an error."""
    if allow_none and not root.is_dir():
        return []
    if not root.is_dir():
        raise UserError(
            f"channel '{name}' is missing: no folder {root}; give the job a '{name}' channel "
            f"with CSV files in its InputDataConfig"
        )
    found = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
    files = [p for p in found if p.name.lower().endswith(SUFFIXES)]
    if not files and not allow_none:
        others = ", ".join(str(p.relative_to(root)) for p in found[:5]) or "nothing"
        raise UserError(
            f"channel '{name}' has no .csv or .csv.gz files under {root} (found: {others})"
        )
    ignored = len(found) - len(files)
    if ignored:
        log.warning("channel %s: ignoring %d file(s) that are not .csv or .csv.gz", name, ignored)
    return files


def _open(source: Path | bytes):
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if source.name.lower().endswith(".gz"):
        return gzip.open(source, "rb")
    return open(source, "rb")


def _scan(source: Path | bytes, where: str) -> tuple[int, bool, bool]:
    """Commas in the source, whether it holds anything but white space, and whether it quotes;
    read in chunks, so a large file is never held in memory twice."""
    commas, content, quotes = 0, False, False
    try:
        with _open(source) as stream:
            while chunk := stream.read(CHUNK):
                commas += chunk.count(b",")
                content = content or bool(chunk.strip())
                quotes = quotes or b'"' in chunk
    except (OSError, EOFError, zlib.error) as error:
        kind = "a truncated or corrupt gzip file" if where.lower().endswith(".gz") else "unreadable"
        raise UserError(f"{where} is {kind}: {error}") from None
    return commas, content, quotes


def _read_pipe(name: str, fifo: Path) -> bytes:
    deadline = time.monotonic() + PIPE_OPEN_TIMEOUT
    while not fifo.exists():  # SageMaker creates the FIFO when it starts streaming
        if time.monotonic() > deadline:
            raise UserError(f"channel '{name}' is in Pipe mode but {fifo} did not appear within "
                            f"{PIPE_OPEN_TIMEOUT}s")
        time.sleep(0.1)
    if not stat.S_ISFIFO(fifo.stat().st_mode) and not fifo.is_file():
        raise UserError(f"{fifo} is neither a pipe nor a file")
    with open(fifo, "rb") as pipe:  # reading to the end closes this epoch
        data = pipe.read()
    if data[:2] == b"\x1f\x8b":  # gzip streams arrive as they are stored
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise UserError(f"channel '{name}': the piped data is a truncated or corrupt gzip: {error}") from None
    return data


def _ragged_line(source: Path | bytes, width: int | None) -> tuple[int, int, int, int] | None:
    """The first line whose field count differs from `width` (default: the first row's), as
    (line, its count, first row's line, its count); None if all match. Lines are 1-based."""
    with _open(source) as stream:
        rows = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""))
        first = None
        for number, row in enumerate(rows, start=1):
            if not row:
                continue
            if first is None:
                first = (number, len(row))
                width = len(row) if width is None else width
            if len(row) != width:
                return number, len(row), *first
    return None


def _ragged_message(where: str, line: int, count: int, first_line: int, width: int) -> str:
    return (f"{where}: line {line} has {count} fields but line {first_line} has {width}; every row needs "
            f"the same number of columns")


def _read_csv(source: Path | bytes, header: bool, **options) -> pd.DataFrame:
    with _open(source) as stream:
        return pd.read_csv(stream, header=0 if header else None, skip_blank_lines=True, encoding="utf-8",
                           **options)


def _parse(source: Path | bytes, where: str, header: bool, exact: str | int | None,
           labelled: bool = True) -> pd.DataFrame | None:
    """One CSV source as a DataFrame: numbers as float32 (the column `exact` names, the target,
    keeps full precision where the data is `labelled`), text as text."""
    commas, content, quotes = _scan(source, where)
    if not content:
        log.warning("skipping empty input %s", where)
        return None
    try:
        # A first look at the columns picks float32 for the numeric ones before the full read,
        # so the full table is never held at float64.
        sample = _read_csv(source, header, nrows=1000)
        dtypes = {column: np.float32 for column in sample.columns
                  if sample[column].dtype.kind in "biuf"
                  and not (labelled and _is(column, exact, sample.columns))}
        try:
            frame = _read_csv(source, header, dtype=dtypes, low_memory=False)
        except ValueError:  # a column numeric in its first rows holds text further down
            frame = _compact(_read_csv(source, header, low_memory=False), exact, labelled)
    except UnicodeDecodeError as error:
        raise UserError(f"{where} is not UTF-8 text: {error}") from None
    except pd.errors.ParserError as error:
        bad = _ragged_line(source, None)
        if bad is not None:
            raise UserError(_ragged_message(where, *bad)) from None
        raise UserError(f"{where} is not valid CSV: {error}") from None
    except pd.errors.EmptyDataError:
        log.warning("skipping empty input %s", where)
        return None
    except ValueError as error:
        raise UserError(f"{where} is not valid CSV: {error}") from None
    width = frame.shape[1]
    # pandas pads a short row with missing values: the comma count tells whether any row was short;
    # where fields are quoted (a quoted comma could even the count out) the rows are counted one by one.
    if quotes or commas != (width - 1) * (len(frame) + (1 if header else 0)):
        bad = _ragged_line(source, width)
        if bad is not None:
            raise UserError(_ragged_message(where, *bad))
    if header:
        names = _header(source)
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:  # pandas would have renamed the second one 'name.1'
            raise UserError(f"{where}: the header names {duplicated[0]!r} twice")
        frame.columns = names
    return frame


def _header(source: Path | bytes) -> list[str]:
    with _open(source) as stream:
        rows = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""))
        for row in rows:
            if row:
                return [name.strip() for name in row]
    return []


def _is(column, target: str | int | list | None, columns) -> bool:
    """Whether `column` is the target (a header name, or a 0-based index, default 0), or one of
    the targets of a list."""
    if isinstance(target, list):
        return any(_is(column, one, columns) for one in target)
    target = 0 if target is None else target
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        return str(column).strip() == target
    index = int(target)
    position = list(columns).index(column)
    return position == (index if index >= 0 else len(columns) + index)


def _compact(frame: pd.DataFrame, exact: str | int | None, labelled: bool = True) -> pd.DataFrame:
    """Numeric columns as float32, but the target (a column at a time: the peak stays near one copy)."""
    for column in frame.columns:
        if frame[column].dtype.kind in "biuf" and not (labelled and _is(column, exact, frame.columns)):
            frame[column] = frame[column].astype(np.float32)
    return frame


def read_table(name: str, root: Path, *, header: bool = False, mode: str = "File",
               target: str | int | None = None, files: list[Path] | None = None,
               labelled: bool = True) -> Table:
    """Every row of a channel (or of its `files`: a host's share) as one DataFrame of raw values
    (numbers as float32 but the target column of `labelled` data, text as str)."""
    if mode == "Pipe":
        fifo = root.parent / f"{name}_0"
        frame = _parse(_read_pipe(name, fifo), f"channel '{name}' ({fifo})", header, target, labelled)
        if frame is None:
            raise UserError(f"channel '{name}' has no data rows: its pipe {fifo} delivered nothing")
        log.info("channel %s: read %d rows from the pipe %s", name, len(frame), fifo.name)
        return Table(frame, [str(fifo)], [0])
    frames, sources = [], []
    started = time.monotonic()
    for path in channel_files(name, root) if files is None else files:
        frame = _parse(path, str(path), header, target, labelled)
        if frame is None:
            continue
        if frames and list(frame.columns) != list(frames[0].columns):
            first = sources[0]
            if frame.shape[1] != frames[0].shape[1]:
                raise UserError(f"{path} has {frame.shape[1]} columns but {first} has {frames[0].shape[1]}; "
                                f"all files of channel '{name}' need the same columns")
            raise UserError(f"{path} has another header than {first}; all files of channel '{name}' "
                            f"need the same columns")
        frames.append(frame)
        sources.append(str(path))
        total = sum(len(f) for f in frames)
        log.info("channel %s: read %d rows from %s (%d rows so far, %.1fs)", name, len(frame), path.name,
                 total, time.monotonic() - started)
    if not frames:
        raise UserError(f"channel '{name}' has no data rows: every file under {root} is empty")
    starts = list(np.cumsum([0] + [len(f) for f in frames[:-1]]))
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return Table(frame, sources, [int(s) for s in starts])


def _column(frame: pd.DataFrame, target: str | int, channel: str):
    """The column a target names: a header name or a 0-based index."""
    if isinstance(target, str) and not target.lstrip("-").isdigit():
        if target not in frame.columns:
            names = ", ".join(map(repr, list(frame.columns)[:20]))
            hint = "" if any(isinstance(c, str) for c in frame.columns) else " (set header=true to read names)"
            raise UserError(f"target column {target!r} is not in channel '{channel}'; its columns are {names}{hint}")
        return target
    index = int(target)
    if not -frame.shape[1] <= index < frame.shape[1]:
        raise UserError(f"target column index {index} is outside channel '{channel}' with "
                        f"{frame.shape[1]} columns")
    return frame.columns[index]


def _check_present(table: Table, values: pd.Series, column) -> None:
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise UserError(f"{table.locate(row)} has no value in the target column ({_name(column)})")


def split_target(table: Table, target: str | int | list | None,
                 channel: str) -> tuple[pd.DataFrame, pd.Series | pd.DataFrame]:
    """Features and target column; `target` is a header name or a 0-based index (default: 0), or
    a list of them (several targets: the target is then a DataFrame, its columns in that order)."""
    if isinstance(target, list):
        return split_targets(table, target, channel)
    frame = table.frame
    if frame.shape[1] < 2:
        raise UserError(f"{table.sources[0]} has {frame.shape[1]} column; it needs a target and at least "
                        f"one feature")
    column = _column(frame, 0 if target is None else target, channel)
    y = frame[column]
    _check_present(table, y, column)
    features = frame.drop(columns=[column])
    return features, y


def split_targets(table: Table, targets: list, channel: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features and several target columns (names or 0-based indices), in the order given."""
    frame = table.frame
    columns = [_column(frame, target, channel) for target in targets]
    twice = [c for i, c in enumerate(columns) if c in columns[:i]]
    if twice:
        raise UserError(f"the targets name the column {_name(twice[0])} twice; name each target column once")
    if len(columns) >= frame.shape[1]:
        raise UserError(f"channel '{channel}' has {frame.shape[1]} columns and {len(columns)} of them are targets, "
                        f"which leaves no feature; give data with at least one feature column after the "
                        f"{len(columns)} targets, or fewer targets (label_size, or the hyperparameter target)")
    y = frame[columns]
    for column in columns:
        _check_present(table, y[column], column)
    features = frame.drop(columns=columns)
    return features, y


def _name(column) -> str:
    return f"{column!r}" if isinstance(column, str) else f"CSV column {int(column) + 1}"


def check_features(features: pd.DataFrame, table: Table) -> None:
    """Numbers must be finite (within float32); text columns are categories."""
    for column in features.columns:
        values = features[column]
        if values.dtype.kind == "f":
            bad = ~(np.abs(values.to_numpy(dtype=np.float64)) <= FLOAT32_MAX) & values.notna().to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise UserError(f"{table.locate(row)}: feature {column!r} is infinite or too large "
                                f"(over 3.4e38); features must be finite numbers")
        elif not pd.api.types.is_numeric_dtype(values.dtype):
            # Mostly numbers with a few words is a typo, not a category.
            numbers = pd.to_numeric(values, errors="coerce")
            words = numbers.isna() & values.notna()
            present = int(values.notna().sum())
            if present and words.any() and (present - int(words.sum())) / present >= 0.9:
                row = int(np.flatnonzero(words.to_numpy())[0])
                raise UserError(f"{table.locate(row)}: feature {column!r} holds numbers but "
                                f"{values.iloc[row]!r} there; fix the value, or make the column all text to "
                                f"use it as a category")
