"""Run inside the image by test_image.py: every pyarrow module the project uses, on files it
writes itself. Prints what it read back as JSON; the test compares that with what was written."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.fs
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def plain(frame: pd.DataFrame) -> dict:
    """A frame as JSON can hold it: its values by column (missing as None) and its dtypes."""
    return {"values": frame.astype(object).where(frame.notna(), None).to_dict("list"),
            "dtypes": {name: str(dtype) for name, dtype in frame.dtypes.items()}}


root = Path(tempfile.mkdtemp())
table = pa.table({"x": [1.5, 2.5, None], "n": pa.array([1, None, 3], pa.int64()),
                  "color": ["red", "blue", "red"], "flag": [True, False, True]})
found = {}

pq.write_table(table, root / "table.parquet")
found["parquet"] = pq.read_table(root / "table.parquet").to_pylist()

frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
frame.to_parquet(root / "frame.parquet", engine="pyarrow", index=False)
found["pandas_parquet"] = plain(pd.read_parquet(root / "frame.parquet", engine="pyarrow"))

# Hive-style partition folders, as Feature Store, Athena and Spark write them.
for year, month, x in ((2026, 12, [1.0, 2.0]), (2025, 1, [3.0])):
    folder = root / "hive" / f"year={year}" / f"month={month}"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"x": x}), folder / "part-0.parquet")
partitioned = ds.dataset(root / "hive", format="parquet", partitioning="hive").to_table()
found["hive_dataset"] = partitioned.sort_by("x").to_pylist()
found["hive_pandas"] = plain(pd.read_parquet(root / "hive", engine="pyarrow").sort_values("x", ignore_index=True))

(root / "rows.csv").write_text("a,b,c\n1,2.5,007\n3,,x\n")
read = pa_csv.read_csv(root / "rows.csv", convert_options=pa_csv.ConvertOptions(
    column_types={"a": pa.float32(), "b": pa.float32(), "c": pa.string()}))
found["csv"] = {"types": [str(field.type) for field in read.schema], "rows": read.to_pylist()}

found["compute"] = {"sum": pc.sum(table["x"]).as_py(), "unique": pc.unique(table["color"]).to_pylist()}

feather.write_feather(table, root / "cache.feather")
found["feather"] = feather.read_table(root / "cache.feather").to_pylist()
with ipc.new_file(root / "cache.arrow", table.schema) as writer:
    writer.write_table(table)
found["ipc"] = ipc.open_file(root / "cache.arrow").read_all().to_pylist()

found["local_files"] = sorted(info.base_name for info in pyarrow.fs.LocalFileSystem().get_file_info(
    pyarrow.fs.FileSelector(str(root))))
print(json.dumps(found))
