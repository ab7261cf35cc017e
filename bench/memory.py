"""Memory of the real serve stack: proportional set size (PSS) by worker count, on a large model.

A random forest of fully grown trees (well over 100 MB as a joblib file) is served with 1, 2 and
4 gunicorn workers, with the model loaded before the fork (the default) and, for comparison,
with MODEL_SERVER_PRELOAD=false (each worker loads its own copy). PSS counts a shared page once
across the processes that share it, so the growth per extra worker is what a worker really costs.
Each server also answers a few requests before it is measured, so the workers have touched the
model.

    python bench/memory.py [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import requests
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ALGO, PATH, REPO, free_port, pss_mb, wait_ping  # noqa: E402

WORKER_COUNTS = (1, 2, 4)


def big_model(model_dir: Path) -> float:
    rng = np.random.default_rng(0)
    features = rng.random((60_000, 4))
    labels = rng.integers(0, 3, len(features))  # noise: fully grown trees get very large
    model = RandomForestClassifier(n_estimators=60, random_state=0, n_jobs=-1).fit(features, labels)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / "model.joblib"
    joblib.dump(model, path)
    return path.stat().st_size / 2**20


def measure(base: Path, workers: int, preload: bool) -> dict:
    port = free_port()
    env = {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(port),
           "MODEL_SERVER_WORKERS": str(workers), "MODEL_SERVER_PRELOAD": "true" if preload else "false",
           "SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([str(ALGO / "serve")], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        startup = wait_ping(f"http://127.0.0.1:{port}", process, timeout=300)
        for _ in range(workers * 4):  # let every worker predict at least once, most likely
            response = requests.post(f"http://127.0.0.1:{port}/invocations", data=b"0.1,0.2,0.3,0.4\n",
                                     headers={"Content-Type": "text/csv"}, timeout=60)
            response.raise_for_status()
        time.sleep(1)
        return {"workers": workers, "preload": preload, "startup_to_ping_s": round(startup, 2),
                "pss_mb": round(pss_mb(process.pid), 1)}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    base = work / "ml"
    size = big_model(base / "model")
    print(f"model file: {size:.0f} MB", flush=True)
    rows = []
    for preload in (True, False):
        for workers in WORKER_COUNTS:
            row = measure(base, workers, preload)
            rows.append(row)
            print(json.dumps(row), flush=True)
    per_worker = {}
    for preload in (True, False):
        pss = {r["workers"]: r["pss_mb"] for r in rows if r["preload"] is preload}
        per_worker["preload" if preload else "no_preload"] = round((pss[4] - pss[1]) / 3, 1)
    result = {"command": "python bench/memory.py", "model_file_mb": round(size, 1), "runs": rows,
              "pss_mb_per_extra_worker": per_worker}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(per_worker))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
