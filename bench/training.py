"""Training on a large CSV: the wrapper (`algo/train`) against plain scikit-learn on the same data.

A 2,000,000-row, 20-feature CSV (label first, no header, as SageMaker hands it over) is trained
with the default decision tree (max_depth 12) twice, each in a fresh process:
  algo/train     the real training program, reading the channel as a job does
  plain          pandas.read_csv + DecisionTreeClassifier.fit, nothing else
Wall time and peak resident memory (ru_maxrss of each run's process tree) are recorded for each, so the
wrapper's overhead (checks, float32 columns, metrics, figure, atomic save) is visible.

    python bench/training.py [--rows 2000000] [--out bench/results]

With --readers, it measures reading alone instead, side by side in one run: the channel reader of
`algo/train` (channels.read_table) against pandas.read_csv(dtype=float32) and pyarrow.csv.read_csv
into the same float32 frame, on a numeric CSV (label first, 20 features, no header) of each size,
and on the same table as one Parquet file against pandas.read_parquet. Each read runs in a fresh
process, the readers in turn, `--reps` times; the time is the read's own (imports excluded), the
peak is the process's own high-water mark (VmHWM); CPU seconds (all threads) are recorded too,
steadier than wall time on a shared machine. Results in bench/results/training-readers.json.

    python bench/training.py --readers [--sizes-mb 250 1500] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
FEATURES = 20
MAX_DEPTH = 12

PLAIN = """
import sys, time
import pandas as pd
from sklearn.tree import DecisionTreeClassifier
started = time.monotonic()
frame = pd.read_csv(sys.argv[1], header=None)
read = time.monotonic() - started
model = DecisionTreeClassifier(max_depth={depth}, random_state=0).fit(frame.iloc[:, 1:], frame.iloc[:, 0])
print(f"read {{read:.1f}}s fit {{time.monotonic() - started - read:.1f}}s", file=sys.stderr)
"""


def make_data(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as out:
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            x = rng.random((n, FEATURES))
            label = (x[:, 0] + x[:, 1] * x[:, 2] + 0.1 * rng.standard_normal(n) > 0.8).astype(int)
            block = np.column_stack([label, x])
            np.savetxt(out, block, fmt=["%d"] + ["%.5f"] * FEATURES, delimiter=",")


# Runs a command and prints its peak RSS: a fresh parent per run, so each peak is that run's own.
PEAK = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def measure(command: list[str], env: dict[str, str]) -> dict:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", PEAK, *command], env=env, capture_output=True, text=True,
                            timeout=3600)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    lines = result.stderr.strip().splitlines()
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(int(lines[-1]) / 1024, 1), "log_tail": lines[-9:-1]}


# One read in a fresh process: argv is the reader and the file; prints seconds, peak and shape.
READ = """
import json, resource, sys, time
from pathlib import Path
import numpy as np, pandas as pd
reader, path = sys.argv[1], Path(sys.argv[2])
if reader == "pyarrow.csv.read_csv":
    import pyarrow as pa, pyarrow.csv as pa_csv
    columns = len(path.open().readline().split(","))
    types = {f"f{i}": pa.float32() for i in range(columns)}
if reader.startswith("algo/train"):
    sys.path.insert(0, sys.argv[3])
    from sagemaker_byo.training import channels
def peak_kb():  # this process's own high-water mark (ru_maxrss would carry the parent's over exec)
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
before, cpu_before = peak_kb(), cpu()
started = time.monotonic()
if reader == "pandas.read_csv":
    frame = pd.read_csv(path, header=None, dtype=np.float32)
elif reader == "pyarrow.csv.read_csv":
    frame = pa_csv.read_csv(path, read_options=pa_csv.ReadOptions(autogenerate_column_names=True),
                            convert_options=pa_csv.ConvertOptions(column_types=types)).to_pandas()
elif reader == "pandas.read_parquet":
    frame = pd.read_parquet(path)
else:
    frame = channels.read_table("training", path.parent).frame
seconds = time.monotonic() - started
print(json.dumps({"seconds": round(seconds, 2), "cpu_seconds": round(cpu() - cpu_before, 2),
                  "peak_rss_mb": round(peak_kb() / 1024, 1),
                  "rss_before_read_mb": round(before / 1024, 1), "shape": list(frame.shape),
                  "frame_mb": round(frame.memory_usage(deep=True).sum() / 2**20, 1),
                  "dtypes": sorted(set(map(str, frame.dtypes)))}))
"""
CSV_READERS = ("algo/train", "pandas.read_csv", "pyarrow.csv.read_csv")
PARQUET_READERS = ("algo/train (Parquet)", "pandas.read_parquet")


def make_sized(folder: Path, megabytes: int) -> tuple[Path, Path]:
    """A numeric CSV of about `megabytes` (a 250 MB block written once, repeated) and the same
    table as one Parquet file, each alone in a folder (the reader reads a channel's folder)."""
    import pyarrow.csv as pa_csv  # noqa: PLC0415 - only the readers' bench needs it
    import pyarrow.parquet as pq  # noqa: PLC0415

    block = folder / "block.csv"
    if not block.exists():
        make_data(block, 1_500_000)
    csv = folder / f"csv-{megabytes}" / "data.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    copies = max(1, round(megabytes * 2**20 / block.stat().st_size))
    with open(csv, "wb") as out:
        for _ in range(copies):
            with open(block, "rb") as source:
                shutil.copyfileobj(source, out, 16 * 2**20)
    parquet = folder / f"parquet-{megabytes}" / "data.parquet"
    parquet.parent.mkdir(parents=True, exist_ok=True)
    table = pa_csv.read_csv(csv, read_options=pa_csv.ReadOptions(autogenerate_column_names=True))
    pq.write_table(table, parquet)
    return csv, parquet


def read_once(reader: str, path: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", READ, reader, str(path), str(REPO / "algo")],
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{reader} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def readers(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-readers-"))
    results = []
    try:
        for megabytes in args.sizes_mb:
            csv, parquet = make_sized(work, megabytes)
            runs: dict[str, list[dict]] = {}
            for _ in range(args.reps):
                for reader in CSV_READERS + PARQUET_READERS:
                    run = read_once(reader, parquet if reader in PARQUET_READERS else csv)
                    runs.setdefault(reader, []).append(run)
                    print(megabytes, reader, json.dumps(run), flush=True)
            best = {reader: {key: min(r[key] for r in rs) for key in ("seconds", "cpu_seconds", "peak_rss_mb")}
                    for reader, rs in runs.items()}
            fastest = min(best[r]["seconds"] for r in CSV_READERS[1:])
            leanest = min(best[r]["peak_rss_mb"] for r in CSV_READERS[1:])
            results.append({
                "csv_mb": round(csv.stat().st_size / 2**20, 1), "parquet_mb": round(parquet.stat().st_size / 2**20, 1),
                "rows": runs["algo/train"][0]["shape"][0], "columns": runs["algo/train"][0]["shape"][1],
                "runs": runs, "best": best,
                "csv_time_ratio": round(best["algo/train"]["seconds"] / fastest, 2),
                "csv_peak_ratio": round(best["algo/train"]["peak_rss_mb"] / leanest, 2),
                "parquet_time_ratio": round(best["algo/train (Parquet)"]["seconds"]
                                            / best["pandas.read_parquet"]["seconds"], 2),
            })
            for path in (csv, parquet):
                shutil.rmtree(path.parent, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"command": "python bench/training.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
              "load_average_at_end": os.getloadavg(),
              "note": "ratios compare the best of the reps; the target is 1.25 or less for each", "sizes": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training-readers.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--readers", action="store_true", help="measure reading alone (see the docstring)")
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[250, 1500])
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    if args.readers:
        return readers(args)
    work = Path(tempfile.mkdtemp(prefix="bench-training-"))
    base = work / "ml"
    data = base / "input" / "data" / "training"
    data.mkdir(parents=True)
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"max_depth": str(MAX_DEPTH)}))
    csv = data / "big.csv"
    started = time.monotonic()
    make_data(csv, args.rows)
    print(f"wrote {csv.stat().st_size / 2**20:.0f} MB in {time.monotonic() - started:.0f}s", flush=True)

    env = {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base)}
    plain = measure([sys.executable, "-c", PLAIN.format(depth=MAX_DEPTH), str(csv)], env)
    print("plain", json.dumps(plain), flush=True)
    wrapper = measure([str(REPO / "algo" / "train")], env)
    print("algo/train", json.dumps(wrapper), flush=True)
    result = {
        "command": "python bench/training.py " + " ".join(sys.argv[1:]),
        "rows": args.rows, "features": FEATURES, "csv_mb": round(csv.stat().st_size / 2**20, 1),
        "estimator": f"DecisionTreeClassifier(max_depth={MAX_DEPTH}, random_state=0)",
        "plain_pandas_sklearn": plain, "algo_train": wrapper,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
