"""Training on a large CSV: the wrapper (`algo/train`) against plain scikit-learn on the same data.

A 2,000,000-row, 20-feature CSV (label first, no header, as SageMaker hands it over) is trained
with the default decision tree (max_depth 12) twice, each in a fresh process:
  algo/train     the real training program, reading the channel as a job does
  plain          pandas.read_csv + DecisionTreeClassifier.fit, nothing else
Wall time and peak resident memory (ru_maxrss of each run's process tree) are recorded for each, so the
wrapper's overhead (checks, float32 columns, metrics, figure, atomic save) is visible.

    python bench/training.py [--rows 2000000] [--out bench/results]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
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
