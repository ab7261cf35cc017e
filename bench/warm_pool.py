"""Reading a large CSV channel on a warm pool: the first job's read (parse, then keep a copy in the
cache) against the second job's (the copy), each in a fresh process, as two jobs of a pool are.

A numeric CSV of 1,500,000 rows x 21 columns (label first, no header; about 250 MB) is read with
`cache.read_table` under SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY, `--runs` times each way:
  first    an empty cache: channels.read_table, then the Arrow IPC copy written
  second   the same files: the copy read back (memory-mapped) into the same DataFrame
  plain    no cache at all: channels.read_table alone
Seconds (of the read alone, imports excluded) and the process's peak resident memory are recorded.

    python bench/warm_pool.py [--rows 1500000] [--runs 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FEATURES = 20

READ = """
import json, resource, sys, time
sys.path.insert(0, {algo!r})
from sagemaker_byo.training import cache
started = time.monotonic()
table = cache.read_table("training", __import__("pathlib").Path(sys.argv[1]), target=0)
seconds = time.monotonic() - started
print(json.dumps({{"seconds": round(seconds, 3), "rows": table.rows,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}))
"""


def make_data(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as out:
        for start in range(0, rows, 250_000):
            n = min(250_000, rows - start)
            x = rng.random((n, FEATURES))
            label = (x[:, 0] + x[:, 1] * x[:, 2] > 0.8).astype(int)
            np.savetxt(out, np.column_stack([label, x]), fmt=["%d"] + ["%.6f"] * FEATURES, delimiter=",")


def read(channel: Path, pool: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGEMAKER_")}
    if pool is not None:
        env["SAGEMAKER_MANAGED_WARMPOOL_CACHE_DIRECTORY"] = str(pool)
    done = subprocess.run([sys.executable, "-c", READ.format(algo=str(REPO / "algo")), str(channel)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-warm-pool-"))
    try:
        channel = work / "training"
        channel.mkdir()
        make_data(channel / "big.csv", args.rows)
        runs: dict[str, list[dict]] = {"plain": [], "first": [], "second": []}
        for _ in range(args.runs):
            pool = work / "pool"
            shutil.rmtree(pool, ignore_errors=True)
            pool.mkdir()
            runs["plain"].append(read(channel, None))
            runs["first"].append(read(channel, pool))
            runs["second"].append(read(channel, pool))
        copy = sum(p.stat().st_size for p in pool.rglob("*.arrow"))
        median = {name: statistics.median(r["seconds"] for r in values) for name, values in runs.items()}
        result = {
            "command": "python bench/warm_pool.py " + " ".join(sys.argv[1:]),
            "rows": args.rows,
            "columns": FEATURES + 1,
            "csv_mb": round((channel / "big.csv").stat().st_size / 2**20, 1),
            "cached_copy_mb": round(copy / 2**20, 1),
            "runs": runs,
            "median_seconds": median,
            "second_over_first": round(median["second"] / median["first"], 3),
            "second_over_plain": round(median["second"] / median["plain"], 3),
        }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "warm_pool.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
