"""Training channels: find the CSV or Parquet data SageMaker hands over, read it, and say clearly
what is wrong.

File and FastFile mode: every `.csv` and `.csv.gz` file, or every Parquet file (`.parquet`,
`.parq`, or a file without those names that starts with Parquet's magic bytes, as Athena writes
them), under /opt/ml/input/data/<channel> (recursively, in name order; hidden files skipped). A
channel holds one format. Hive-style folders (`year=2026/month=12/part-0.parquet`) add their
values as columns, as pyarrow's dataset reader types them. Pipe mode: the FIFO
/opt/ml/input/data/<channel>_0 (the first epoch), CSV only.

SageMaker's CSV convention is no header; a header row is read when the job says so. Parquet
names its columns in its schema, whatever `header` says. Numeric columns are stored as float32,
the precision tree ensembles compute in, which halves the memory of a large channel; the target
keeps its own type. Text stays text (pandas' `str`).

CSV is parsed by pyarrow with the column types decided from a first block (float32 for numbers,
text for the rest), and by pandas, as before, wherever pyarrow refuses the file (a ragged row,
bytes that are not UTF-8, a column numeric at first and text further down): the checks and their
messages are pandas'.

Before reading, the channel's size in memory is estimated from its files (size on disk, and the
expansion of a first block or Parquet's own metadata); a channel that cannot fit in the memory
the container has left is refused, naming the sizes and the ways out.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import stat
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_dataset
import pyarrow.parquet as pq
from pandas._libs.parsers import STR_NA_VALUES

from .. import resources
from ..errors import UserError

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".parq")
SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
PARQUET_MAGIC = b"PAR1"
CSV_TYPE, PARQUET_TYPE = "text/csv", "application/x-parquet"
SUPPORTED_CONTENT_TYPES = (CSV_TYPE, PARQUET_TYPE)
FLOAT32_MAX = float(np.finfo(np.float32).max)
PIPE_OPEN_TIMEOUT = 60  # seconds to wait for SageMaker to create a channel's FIFO
CHUNK = 8 * 1024 * 1024
# pyarrow's unit of parallel parsing: 4 times its default, a quarter of the chunks to join into
# pandas, for a peak about 20 MB higher.
BLOCK = 4 * 1024 * 1024
SAMPLE_ROWS = 1000  # the first block that decides a CSV file's column types
SAMPLE_BYTES = 1024 * 1024  # what the memory estimate reads of a CSV file (decompressed)
# pandas' missing-value words, so pyarrow reads the same cells as missing.
NA_VALUES = sorted(STR_NA_VALUES)


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
    """The channel's ContentType checked (CSV, or Parquet outside Pipe mode), and its `label_size`
    parameter (SageMaker's convention: `text/csv;label_size=0` is features only, N the first N
    columns are targets) or None where it gives none."""
    content_type = (config.get(name) or {}).get("ContentType")
    if not content_type:
        return None
    media_type, _, rest = str(content_type).partition(";")
    media_type = media_type.strip().lower()
    if media_type not in SUPPORTED_CONTENT_TYPES:
        raise UserError(
            f"channel '{name}' has ContentType {content_type!r}; this algorithm reads "
            f"{', '.join(SUPPORTED_CONTENT_TYPES)} (set ContentType in the channel's configuration)"
        )
    if media_type == PARQUET_TYPE and input_mode(name, config) == "Pipe":
        raise UserError(_PARQUET_PIPE.format(name=name))
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


_PARQUET_PIPE = ("channel '{name}' is Parquet in Pipe mode, which this algorithm does not read (a pipe joins "
                 "the files into one stream, and Parquet files cannot be joined); set the channel's "
                 "TrainingInputMode to File or FastFile")


def input_mode(name: str, config: dict) -> str:
    return str((config.get(name) or {}).get("TrainingInputMode") or "File")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _is_parquet(path: Path) -> bool:
    """A Parquet file by its name, or (a name without a known suffix) by its first bytes."""
    lower = path.name.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return True
    if lower.endswith(CSV_SUFFIXES):
        return False
    try:
        with open(path, "rb") as stream:
            return stream.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def channel_files(name: str, root: Path, allow_none: bool = False) -> list[Path]:
    """The channel's CSV or Parquet files; with `allow_none` (a host of several, which may get no
    share) an empty or absent folder gives none instead of an error."""
    if allow_none and not root.is_dir():
        return []
    if not root.is_dir():
        raise UserError(
            f"channel '{name}' is missing: no folder {root}; give the job a '{name}' channel "
            f"with CSV or Parquet files in its InputDataConfig"
        )
    found = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
    csvs = [p for p in found if p.name.lower().endswith(CSV_SUFFIXES)]
    parquets = [p for p in found if p not in set(csvs) and _is_parquet(p)] if found else []
    if csvs and parquets:
        raise UserError(
            f"channel '{name}' mixes CSV and Parquet files ({csvs[0].relative_to(root)} and "
            f"{parquets[0].relative_to(root)}); a channel holds one format: put them in channels of their own, "
            f"or convert one to the other")
    files = csvs or parquets
    if not files and not allow_none:
        others = ", ".join(str(p.relative_to(root)) for p in found[:5]) or "nothing"
        raise UserError(
            f"channel '{name}' has no .csv, .csv.gz or Parquet files under {root} (found: {others})"
        )
    ignored = len(found) - len(files)
    if ignored:
        log.warning("channel %s: ignoring %d file(s) that are not %s", name, ignored,
                    "Parquet" if parquets else ".csv or .csv.gz")
    return files


def names_columns(name: str, root: Path, config: dict) -> bool:
    """Whether the channel's data names its columns whatever `header` says: Parquet, by its
    ContentType or its files (a target may then be named without header=true)."""
    content_type = str((config.get(name) or {}).get("ContentType") or "")
    if content_type.partition(";")[0].strip().lower() == PARQUET_TYPE:
        return True
    if input_mode(name, config) == "Pipe" or not root.is_dir():
        return False
    return any(_is_parquet(p) for p in channel_files(name, root, allow_none=True)[:1])


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


def _parse_pandas(source: Path | bytes, where: str, header: bool, exact: str | int | None,
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


# -- CSV: pyarrow with the column types of a first block; pandas where pyarrow refuses ---------

class _Refused(Exception):
    """pyarrow cannot read the source as the first block says: pandas reads it, and reports."""


def _raw_header(source: Path | bytes) -> list[str]:
    with _open(source) as stream:
        rows = csv.reader(io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline=""))
        for row in rows:
            if row:
                return row
    return []


def _arrow_types(sample: pd.DataFrame, exact, labelled: bool) -> list[pa.DataType]:
    """Each column's type for pyarrow: float32 for numbers, string for text; the target as
    pandas typed it in the first block (a later value that does not fit sends the file to pandas)."""
    types = []
    for column in sample.columns:
        kind = sample[column].dtype.kind
        if labelled and _is(column, exact, sample.columns):
            types.append({"i": pa.int64(), "u": pa.int64(), "f": pa.float64(), "b": pa.bool_()}.get(kind, pa.string()))
        elif kind in "iuf":
            types.append(pa.float32())
        elif kind == "b":
            raise _Refused  # pandas reads True/False as numbers 0/1
        else:
            types.append(pa.string())
    return types


def _parse_arrow(source: Path | bytes, header: bool, exact, labelled: bool) -> pa.Table:
    try:
        sample = _read_csv(source, header, nrows=SAMPLE_ROWS)
        raw = _raw_header(source) if header else [f"f{i}" for i in range(sample.shape[1])]
    except Exception as error:  # noqa: BLE001 - any doubt: pandas reads it, and says what is wrong
        raise _Refused from error
    names = [name.strip() for name in raw]
    if len(set(names)) != len(names) or len(names) != sample.shape[1]:
        raise _Refused  # pandas' path names the duplicate, or the ragged line
    types = _arrow_types(sample, exact, labelled)
    options = pa_csv.ConvertOptions(column_types=dict(zip(raw, types, strict=True)), null_values=NA_VALUES,
                                    strings_can_be_null=True, quoted_strings_can_be_null=True)
    # Values spanning lines are rare and slow pyarrow's parallel parse by a third: it is asked for
    # them only after a parse error (a quoted line break split the file's rows where it should not).
    for newlines in (False, True):
        if isinstance(source, bytes):
            stream = pa.BufferReader(source)
        elif source.name.lower().endswith(".gz"):
            stream = pa.input_stream(str(source), compression="gzip")
        else:
            stream = pa.OSFile(str(source))  # random access: pyarrow parses blocks in parallel
        try:
            table = pa_csv.read_csv(stream, read_options=pa_csv.ReadOptions(autogenerate_column_names=not header,
                                                                               block_size=BLOCK),
                                    parse_options=pa_csv.ParseOptions(newlines_in_values=newlines),
                                    convert_options=options)
            break
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as error:
            if newlines or "CSV parse error" not in str(error):
                raise _Refused from error
    if table.column_names != raw:
        raise _Refused
    return table.rename_columns(names if header else [str(i) for i in range(len(types))])


def _parse(source: Path | bytes, where: str, header: bool, exact, labelled: bool) -> pa.Table | pd.DataFrame | None:
    """One CSV source: a pyarrow table where pyarrow reads it as its first block says, else the
    DataFrame pandas reads (None for an empty source)."""
    if not isinstance(source, bytes) and source.stat().st_size == 0:
        log.warning("skipping empty input %s", where)
        return None
    try:
        return _parse_arrow(source, header, exact, labelled)
    except _Refused:
        return _parse_pandas(source, where, header, exact, labelled)


# -- Parquet ------------------------------------------------------------------------------------

UNSUPPORTED = ("numbers, booleans and text (plain or dictionary-encoded); convert dates and times to numbers "
               "(such as days since a date) and lists or structs to columns of their own")


def _parquet_kind(kind: pa.DataType) -> str | None:
    """'number', 'bool' or 'text', or None for a type the model cannot take."""
    if pa.types.is_dictionary(kind):
        return _parquet_kind(kind.value_type)
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind) or pa.types.is_null(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "text"
    return None


def _check_schemas(name: str, files: list[Path]) -> pa.Schema:
    """Every file's schema the same as the first's; the first returned."""
    first = None
    for path in files:
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as error:
            raise UserError(f"{path} is not a readable Parquet file: {error}") from None
        if first is None:
            first, first_path = schema, path
            continue
        if not schema.equals(first, check_metadata=False):
            theirs = {f.name: str(f.type) for f in schema}
            ours = {f.name: str(f.type) for f in first}
            differences = [f"{n}: {ours.get(n, 'absent')} against {theirs.get(n, 'absent')}"
                           for n in dict.fromkeys([*ours, *theirs]) if ours.get(n) != theirs.get(n)]
            shown = "; ".join(differences[:5]) or "the same columns in another order"
            raise UserError(f"{path} and {first_path} have different schemas ({shown}); all Parquet files of "
                            f"channel '{name}' need the same columns of the same types")
    return first


def _arrow_column(column: pa.ChunkedArray, kind: str, target: bool) -> pa.ChunkedArray:
    """A Parquet column as training takes it: numbers and booleans as float32 (a target keeps its
    type: integers, floats as float64, booleans), dictionary text as plain text."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == "text":
        return column.cast(pa.string()) if not pa.types.is_string(column.type) else column
    if target:
        if kind == "bool" or pa.types.is_integer(column.type):
            return column
        return column.cast(pa.float64(), safe=False)
    if pa.types.is_decimal(column.type):
        column = column.cast(pa.float64(), safe=False)
    return column.cast(pa.float32(), safe=False)


def _read_parquet(name: str, root: Path, files: list[Path], exact, labelled: bool) -> list[tuple[Path, pa.Table]]:
    _check_schemas(name, files)
    try:
        dataset = pa_dataset.dataset([str(p) for p in files], format="parquet", partitioning="hive",
                                     partition_base_dir=str(root))
    except (pa.ArrowException, OSError) as error:
        raise UserError(f"channel '{name}': its Parquet files cannot be read together: {error}") from None
    schema = dataset.schema
    kinds = {}
    for field in schema:
        kinds[field.name] = _parquet_kind(field.type)
        if kinds[field.name] is None:
            raise UserError(f"channel '{name}': column {field.name!r} is of type {field.type}, which the model "
                            f"cannot take; it takes {UNSUPPORTED}")
    targets = {c for c in schema.names if labelled and _is(c, exact, schema.names)}
    by_path = {fragment.path: fragment for fragment in dataset.get_fragments()}
    tables = []
    for path in files:
        try:
            table = by_path[str(path)].to_table(schema=schema)
        except (pa.ArrowException, OSError) as error:
            raise UserError(f"{path} is not a readable Parquet file: {error}") from None
        columns = [_arrow_column(table.column(c), kinds[c], c in targets) for c in schema.names]
        tables.append((path, pa.table(columns, names=schema.names)))
    return tables


# -- memory -------------------------------------------------------------------------------------

def _csv_sample(source: Path | bytes) -> tuple[bytes, float]:
    """A first block of the decompressed text, and the expansion from the bytes stored."""
    if isinstance(source, bytes):
        return source[:SAMPLE_BYTES], 1.0
    if not source.name.lower().endswith(".gz"):
        with open(source, "rb") as stream:
            return stream.read(SAMPLE_BYTES), 1.0
    inflate, out, used = zlib.decompressobj(wbits=31), [], 0
    with open(source, "rb") as stream:
        while sum(map(len, out)) < SAMPLE_BYTES and (chunk := stream.read(64 * 1024)):
            out.append(inflate.decompress(chunk))
            used += len(chunk) - len(inflate.unused_data)
            if inflate.eof:
                break
    text = b"".join(out)
    return text[:SAMPLE_BYTES], (len(text) / used if used else 1.0)


def _row_bytes(frame: pd.DataFrame, exact, labelled: bool) -> float:
    """A row's bytes in the table read: 4 a number, 8 a target, text its length and an offset."""
    total = 0.0
    for column in frame.columns:
        values = frame[column]
        if labelled and _is(column, exact, frame.columns):
            total += 8
        if values.dtype.kind in "biuf":
            total += 0 if labelled and _is(column, exact, frame.columns) else 4
        else:
            total += float(values.dropna().astype(str).str.len().mean() or 0) + 8
    return total


def _csv_estimate(source: Path | bytes, size: int, header: bool, exact, labelled: bool) -> int:
    """The bytes `size` bytes stored like `source` take once read, from its first block."""
    try:
        text, expansion = _csv_sample(source)
    except (OSError, zlib.error):
        return 0  # the read reports it
    lines = text.count(b"\n")
    if lines > 1 and len(text) >= SAMPLE_BYTES:
        text = text[:text.rindex(b"\n") + 1]  # whole rows only
    try:
        sample = pd.read_csv(io.BytesIO(text), header=0 if header else None, encoding="utf-8",
                             encoding_errors="replace")
    except (ValueError, pd.errors.ParserError):
        return 0
    if sample.empty:
        return 0
    return int(size * expansion / len(text) * len(sample) * _row_bytes(sample, exact, labelled))


def _parquet_estimate(files: list[Path], exact, labelled: bool) -> int:
    total = 0
    for path in files:
        try:
            metadata = pq.read_metadata(path)
        except (pa.ArrowException, OSError):
            continue  # the read reports it
        schema = metadata.schema.to_arrow_schema()
        for index, field in enumerate(schema):
            kind = _parquet_kind(field.type)
            if kind == "text":
                total += sum(metadata.row_group(g).column(index).total_uncompressed_size
                             for g in range(metadata.num_row_groups))
                total += 8 * metadata.num_rows
            else:
                total += (8 if labelled and _is(field.name, exact, schema.names) else 4) * metadata.num_rows
    return total


def _estimate(files: list[Path], parquet: bool, header: bool, exact, labelled: bool) -> int:
    """The channel's bytes in memory once read; each kind of CSV file (plain, gzip) is sampled once
    and its ratio applied to the others' sizes."""
    if parquet:
        return _parquet_estimate(files, exact, labelled)
    total = 0
    for gz in (False, True):
        group = [p for p in files if p.name.lower().endswith(".gz") == gz]
        sizes = sum(p.stat().st_size for p in group)
        first = next((p for p in group if p.stat().st_size > 0), None)
        if first is not None:
            total += _csv_estimate(first, sizes, header, exact, labelled)
    return total


def _available(env: dict[str, str] | None = None) -> tuple[int, resources.Figure]:
    """The bytes this container has left, and its limit."""
    limit = resources.memory(env)
    used = resources.memory_used(env)
    if limit.source.startswith("cgroup") and not used.source.startswith("cgroup"):
        used = resources.Figure(_own_rss(), "this process")  # a limit whose usage cannot be read
    return limit.value - used.value, limit


def _own_rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _size(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB" if value < 10 * 2**30 else f"{value / 2**30:,.1f} GiB"


def check_memory(name: str, needed: int, stored: str, env: dict[str, str] | None = None) -> None:
    """Refuse a channel whose table cannot fit in the memory the container has left."""
    free, limit = _available(env)
    log.info("channel %s: %s, about %s in memory; %s free of %s", name, stored, _size(needed), _size(max(free, 0)),
             resources.describe_memory(limit))
    if needed > free:
        raise UserError(
            f"channel '{name}' is too large for this container's memory: its data ({stored}) takes about "
            f"{_size(needed)} once read, and the container has {_size(limit.value)} ({limit.source}), "
            f"{_size(max(free, 0))} of it free; train on an instance with more memory, or across several "
            f"instances (instance_count > 1 with an algorithm that trains across hosts, each host reading its "
            f"share of the files), or on a sample of the data")


def _stored(files: list[Path], parquet: bool) -> str:
    size = sum(p.stat().st_size for p in files)
    kind = "Parquet" if parquet else "CSV"
    return f"{len(files)} {kind} file{'s' if len(files) != 1 else ''}, {_size(size)} on disk"


# -- the table ----------------------------------------------------------------------------------

def _assemble(pieces: list[tuple[str, pa.Table | pd.DataFrame]], name: str, header: bool, parquet: bool) -> Table:
    """One frame from every source's rows, with minimal copies: pyarrow tables are joined without
    copying and converted once."""
    first_source, first = pieces[0]
    for source, piece in pieces[1:]:
        if piece.shape[1] != first.shape[1]:
            raise UserError(f"{source} has {piece.shape[1]} columns but {first_source} has {first.shape[1]}; "
                            f"all files of channel '{name}' need the same columns")
        if [str(c) for c in _names(piece)] != [str(c) for c in _names(first)]:
            raise UserError(f"{source} has another header than {first_source}; all files of channel '{name}' "
                            f"need the same columns")
    sources = [source for source, _ in pieces]
    lengths = [len(piece) for _, piece in pieces]
    starts = [int(s) for s in np.cumsum([0] + lengths[:-1])]
    tables = [piece for _, piece in pieces]
    pieces.clear()  # the tables are freed as they are converted
    if all(isinstance(t, pa.Table) for t in tables) and len({t.schema for t in tables}) == 1:
        joined = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        tables.clear()
        frame = _to_pandas(joined)
    else:
        frames = [_to_pandas(t) if isinstance(t, pa.Table) else t for t in tables]
        tables.clear()
        if not header and not parquet:
            for frame in frames:
                frame.columns = pd.RangeIndex(frame.shape[1])
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if not header and not parquet:
        frame.columns = pd.RangeIndex(frame.shape[1])
    return Table(frame, sources, starts)


def _names(piece: pa.Table | pd.DataFrame) -> list:
    return piece.column_names if isinstance(piece, pa.Table) else list(piece.columns)


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    # pyarrow's threads join the chunks into one block per type: a quarter of the time of a
    # column-by-column conversion, for the same peak (pyarrow's pool keeps what it frees).
    return table.to_pandas()


def read_table(name: str, root: Path, *, header: bool = False, mode: str = "File",
               target: str | int | None = None, files: list[Path] | None = None,
               labelled: bool = True) -> Table:
    """Every row of a channel (or of its `files`: a host's share) as one DataFrame of raw values
    (numbers as float32 but the target column of `labelled` data, text as str)."""
    if mode == "Pipe":
        fifo = root.parent / f"{name}_0"
        data = _read_pipe(name, fifo)
        if data[:4] == PARQUET_MAGIC:
            raise UserError(_PARQUET_PIPE.format(name=name))
        check_memory(name, _csv_estimate(data, len(data), header, target, labelled),
                     f"{_size(len(data))} from its pipe")
        where = f"channel '{name}' ({fifo})"
        piece = _parse(data, where, header, target, labelled)
        del data
        if piece is None or len(piece) == 0:
            raise UserError(f"channel '{name}' has no data rows: its pipe {fifo} delivered nothing")
        table = _assemble([(str(fifo), piece)], name, header, parquet=False)
        log.info("channel %s: read %d rows from the pipe %s", name, table.rows, fifo.name)
        return table
    files = channel_files(name, root) if files is None else files
    parquet = bool(files) and _is_parquet(files[0])
    if any(_is_parquet(p) != parquet for p in files):
        raise UserError(f"channel '{name}' mixes CSV and Parquet files; a channel holds one format")
    check_memory(name, _estimate(files, parquet, header, target, labelled), _stored(files, parquet))
    started = time.monotonic()
    pieces: list[tuple[str, pa.Table | pd.DataFrame]] = []
    total = 0
    read = (_read_parquet(name, root, files, target, labelled) if parquet
            else ((p, _parse(p, str(p), header, target, labelled)) for p in files))
    for path, piece in read:
        if piece is None:
            continue
        pieces.append((str(path), piece))
        total += len(piece)
        log.info("channel %s: read %d rows from %s (%d rows so far, %.1fs)", name, len(piece), path.name,
                 total, time.monotonic() - started)
    if not pieces or not total:
        raise UserError(f"channel '{name}' has no data rows: every file under {root} is empty")
    return _assemble(pieces, name, header, parquet)


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
