"""Training channels: find the CSV files SageMaker copied in, read them, and say clearly what is wrong.

SageMaker's CSV convention: no header, the label in the first column. Every `.csv` and `.csv.gz`
file under the channel folder is read (recursively, in name order); hidden files are skipped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError

log = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz")
SUPPORTED_CONTENT_TYPES = ("text/csv",)
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class Dataset:
    features: np.ndarray  # float64, rows x features
    labels: np.ndarray  # as read: strings or numbers
    files: list[Path]

    @property
    def rows(self) -> int:
        return len(self.labels)


def input_data_config(path: Path) -> dict:
    """Channel name to its configuration (ContentType, TrainingInputMode, ...); {} if the file is absent."""
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise UserError(f"{path.name} must hold a JSON object of channel names")
    return config


def check_content_type(name: str, config: dict) -> None:
    content_type = (config.get(name) or {}).get("ContentType")
    if content_type:
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in SUPPORTED_CONTENT_TYPES:
            raise UserError(
                f"channel '{name}' has ContentType {content_type!r}; this algorithm reads "
                f"{', '.join(SUPPORTED_CONTENT_TYPES)} (set ContentType in the channel's configuration)"
            )


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def channel_files(name: str, root: Path) -> list[Path]:
    if not root.is_dir():
        raise UserError(
            f"channel '{name}' is missing: no folder {root}; give the job a '{name}' channel "
            f"with CSV files in its InputDataConfig"
        )
    found = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
    files = [p for p in found if p.name.lower().endswith(SUFFIXES)]
    if not files:
        others = ", ".join(str(p.relative_to(root)) for p in found[:5]) or "nothing"
        raise UserError(
            f"channel '{name}' has no .csv or .csv.gz files under {root} (found: {others})"
        )
    ignored = len(found) - len(files)
    if ignored:
        log.warning("channel %s: ignoring %d file(s) that are not .csv or .csv.gz", name, ignored)
    return files


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        if path.name.lower().endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        kind = "a truncated or corrupt gzip file" if path.name.lower().endswith(".gz") else "unreadable"
        raise UserError(f"{path} is {kind}: {error}") from None
    return data


def _check_ragged(data: bytes, path: Path) -> int:
    """The number of fields per row; a row with another number is a user error naming its line."""
    lines = data.splitlines()
    if b'"' in data:  # quoted fields may hold commas: count properly, slowly
        rows = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline=""))
        try:
            counts = np.array([len(row) if row else 0 for row in rows])
        except UnicodeDecodeError as error:
            raise UserError(f"{path} is not UTF-8 text: {error}") from None
        except csv.Error as error:
            raise UserError(f"{path} is not valid CSV: {error}") from None
    else:
        counts = np.array([line.count(b",") + 1 if line.strip() else 0 for line in lines])
    nonblank = counts > 0
    if not nonblank.any():
        return 0
    width = int(counts[nonblank][0])
    bad = np.flatnonzero(nonblank & (counts != width))
    if bad.size:
        line = int(bad[0]) + 1
        raise UserError(
            f"{path}: line {line} has {int(counts[bad[0]])} fields but line "
            f"{int(np.flatnonzero(nonblank)[0]) + 1} has {width}; every row needs the same number of columns"
        )
    return width


def read_frame(path: Path) -> pd.DataFrame | None:
    """One CSV file as a DataFrame of raw values; None for an empty file."""
    data = _read_bytes(path)
    if not data.strip():
        log.warning("skipping empty file %s", path)
        return None
    _check_ragged(data, path)
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None, skip_blank_lines=True, low_memory=False)
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text: {error}") from None
    except (pd.errors.ParserError, ValueError) as error:
        raise UserError(f"{path} is not valid CSV: {error}") from None
    return frame


def _numeric(frame: pd.DataFrame, path: Path) -> np.ndarray:
    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind in "biuf":
            continue
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise UserError(
                f"{path}: feature column {column} (CSV column {column + 1}) holds {series.iloc[row]!r} "
                f"on data row {row + 1}; features must be numbers (the label goes in the first column)"
            )
        frame[column] = converted
    features = frame.to_numpy(dtype=np.float64)
    # float32 is what tree-based estimators compute in; beyond its range a value is infinite to them.
    infinite = ~(np.abs(features) <= FLOAT32_MAX) & ~np.isnan(features)
    if infinite.any():
        row, column = np.argwhere(infinite)[0]
        raise UserError(
            f"{path}: feature column {frame.columns[column]} (CSV column {frame.columns[column] + 1}) is "
            f"infinite or too large (over 3.4e38) on data row {row + 1}; features must be finite numbers"
        )
    return features


def read_channel(name: str, root: Path) -> Dataset:
    """Labels and numeric features of every CSV file in a channel."""
    files = channel_files(name, root)
    features, labels, used = [], [], []
    width = None
    for path in files:
        frame = read_frame(path)
        if frame is None:
            continue
        if frame.shape[1] < 2:
            raise UserError(f"{path} has {frame.shape[1]} column; it needs the label first, then at least one feature")
        if width is not None and frame.shape[1] != width:
            raise UserError(
                f"{path} has {frame.shape[1]} columns but {used[0]} has {width}; all files of channel "
                f"'{name}' need the same columns"
            )
        width = frame.shape[1]
        label = frame.pop(0)
        if label.isna().any():
            row = int(np.flatnonzero(label.isna().to_numpy())[0])
            raise UserError(f"{path}: data row {row + 1} has no label in the first column")
        frame.columns = range(1, width)
        features.append(_numeric(frame, path))
        labels.append(label.to_numpy())
        used.append(path)
        log.info("channel %s: read %d rows from %s", name, len(frame), path.name)
    if not used:
        raise UserError(f"channel '{name}' has no data rows: every file under {root} is empty")
    y = np.concatenate(labels)
    if y.dtype == object:
        y = y.astype(str)
    return Dataset(features=np.vstack(features), labels=y, files=used)
