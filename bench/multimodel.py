"""Multi-model endpoint: load time, invoke throughput, memory per model and memory given back.

With 2 gunicorn workers and MODELS small models (decision trees on iris-like data, each with the
model.json algo/train writes), against the real serve stack on loopback:
  load          POST /models for every model, one after the other: latency of each load
  first use     the first invocation of each model in the second worker (its lazy load)
  list          GET /models with every model loaded
  throughput    wrk on POST /models/<name>/invoke (one model, and MODELS models in turn through a
                Lua script) against POST /invocations of the single-model server with the same
                model, in the same run; each wrk run is DURATION seconds, REPS times, median
  memory        PSS of the server's processes with no model, with every model loaded and used in
                both workers, and after DELETE of every model
Every run is bounded in time.

    python bench/multimodel.py [--models 200] [--duration 3] [--reps 2] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import requests
from sklearn.tree import DecisionTreeClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "algo"))
from serving import ALGO, PATH, REPO, Target, free_port, pss_mb  # noqa: E402

from sagemaker_byo import contract  # noqa: E402

WORKERS = 2
CONNECTIONS = 4
ROW = "5.1,3.5,1.4,0.2\n"


def make_models(root: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        features = pd.DataFrame(rng.normal(3, 1.5, (150, 4)), columns=["a", "b", "c", "d"])
        labels = np.where(features["a"] + features["c"] * rng.normal(1, 0.2) > 6, "yes", "no")
        model = DecisionTreeClassifier(max_depth=6, random_state=i).fit(features.to_numpy(), labels)
        folder = root / f"model-{i:04d}" / "model"
        folder.mkdir(parents=True)
        joblib.dump(model, folder / "model.joblib")
        description = {"format_version": 2, "input": contract.measure(model, features).as_json()}
        (folder / "model.json").write_text(json.dumps(description))
        names.append(f"model-{i:04d}")
    return names


def server(base: Path, multi_model: bool) -> Target:
    port = free_port()
    env = {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(port),
           "MODEL_SERVER_WORKERS": str(WORKERS), "SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING"}
    if multi_model:
        env["SAGEMAKER_MULTI_MODEL"] = "true"
    return Target("mme" if multi_model else "single", [str(ALGO / "serve")], env, port)


def wrk(url: str, script: Path, duration: int) -> dict:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{duration}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, timeout=duration + 30,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": int(errors.group(1)) if errors else 0}


def script(work: Path, name: str, paths: list[str] | None = None) -> Path:
    """A wrk script posting ROW; with `paths`, each request goes to the next of them in turn."""
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "text/csv"', f"wrk.body = {json.dumps(ROW)}"]
    if paths:
        lines += ["local paths = {" + ", ".join(json.dumps(p) for p in paths) + "}", "local i = 0",
                  "request = function()", "  i = i % #paths + 1",
                  "  return wrk.format(nil, paths[i])", "end"]
    path = work / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def median_run(url: str, lua: Path, duration: int, reps: int) -> dict:
    runs = [wrk(url, lua, duration) for _ in range(reps)]
    best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return {**best, "runs_rps": [r["rps"] for r in runs]}


def large_models(session: requests.Session, url: str, work: Path, target: Target, count: int = 8) -> dict:
    """Memory per model, and given back, for models of several MB (random forests)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1)
    features, labels = rng.random((4000, 4)), rng.integers(0, 2, 4000)
    sizes = []
    for i in range(count):
        folder = work / "large" / f"forest-{i}" / "model"
        folder.mkdir(parents=True)
        joblib.dump(RandomForestClassifier(n_estimators=20, random_state=i).fit(features, labels),
                    folder / "model.joblib")
        sizes.append((folder / "model.joblib").stat().st_size)
    before = pss_mb(target.process.pid)
    loads = []
    for i in range(count):
        started = time.monotonic()
        folder = work / "large" / f"forest-{i}" / "model"
        answer = session.post(f"{url}/models", json={"model_name": f"forest-{i}", "url": str(folder)}, timeout=60)
        answer.raise_for_status()
        loads.append(time.monotonic() - started)
        for _ in range(4):
            session.post(f"{url}/models/forest-{i}/invoke", data=ROW, headers={"Content-Type": "text/csv"},
                         timeout=60).raise_for_status()
    loaded = pss_mb(target.process.pid)
    for i in range(count):
        session.delete(f"{url}/models/forest-{i}", timeout=60).raise_for_status()
    after = pss_mb(target.process.pid)
    per_model = (loaded - before) / count
    return {"models": count, "file_mb": round(statistics.mean(sizes) / 2**20, 2), "load": summary(loads),
            "pss_mb_per_model_both_workers": round(per_model, 2),
            "pss_mb_per_model_per_worker": round(per_model / WORKERS, 2),
            "given_back_mb": round(loaded - after, 1), "loaded_mb": round(loaded - before, 1)}


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1000, 2),
            "max_ms": round(ordered[-1] * 1000, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-mme-"))
    base = work / "ml"
    names = make_models(base / "models", args.models)
    shutil.copytree(base / "models" / names[0] / "model", base / "model")  # the single-model server's
    disk = sum(f.stat().st_size for f in (base / "models").rglob("*") if f.is_file()) / len(names)
    result: dict = {"command": f"python bench/multimodel.py --models {args.models} --duration {args.duration} "
                               f"--reps {args.reps}",
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "workers": WORKERS, "models": len(names), "model_on_disk_kb": round(disk / 1024, 1)}
    mme = server(base, multi_model=True)
    single = server(base, multi_model=False)
    try:
        mme.start()
        url = mme.url
        session = requests.Session()
        time.sleep(0.5)
        empty = pss_mb(mme.process.pid)
        loads, first_uses = [], []
        for name in names:
            started = time.monotonic()
            folder = base / "models" / name / "model"
            answer = session.post(f"{url}/models", json={"model_name": name, "url": str(folder)}, timeout=60)
            loads.append(time.monotonic() - started)
            answer.raise_for_status()
        for name in names:  # each worker answers each model at least once: a copy in both
            timings = []
            for _ in range(4):
                started = time.monotonic()
                session.post(f"{url}/models/{name}/invoke", data=ROW, headers={"Content-Type": "text/csv"},
                             timeout=60).raise_for_status()
                timings.append(time.monotonic() - started)
            first_uses.append(max(timings))
        started = time.monotonic()
        listing = [session.get(f"{url}/models", params={"limit": 1000}, timeout=10) for _ in range(20)]
        result["list_ms"] = round((time.monotonic() - started) / 20 * 1000, 2)
        assert len(listing[-1].json()["models"]) == len(names)
        time.sleep(0.5)
        full = pss_mb(mme.process.pid)
        result["load"] = summary(loads)
        result["slowest_of_4_first_invokes"] = summary(first_uses)
        result["memory_mb"] = {"no_model": round(empty, 1), "all_loaded_in_both_workers": round(full, 1),
                               "per_model_kb": round((full - empty) * 1024 / len(names), 1),
                               "per_model_per_worker_kb": round((full - empty) * 1024 / len(names) / WORKERS, 1)}
        print(json.dumps(result), flush=True)

        one = script(work, "one")
        many = script(work, "many", [f"/models/{n}/invoke" for n in names])
        result["throughput"] = {
            "mme_one_model": median_run(f"{url}/models/{names[0]}/invoke", one, args.duration, args.reps),
            "mme_all_models_in_turn": median_run(f"{url}/models/{names[0]}/invoke", many, args.duration, args.reps),
        }
        time.sleep(0.5)
        before_unload = pss_mb(mme.process.pid)  # after the load tests: their buffers stay
        started = time.monotonic()
        for name in names:
            session.delete(f"{url}/models/{name}", timeout=60).raise_for_status()
        result["unload_ms_mean"] = round((time.monotonic() - started) / len(names) * 1000, 2)
        after = pss_mb(mme.process.pid)
        result["memory_mb"]["before_unloading_all"] = round(before_unload, 1)
        result["memory_mb"]["after_unloading_all"] = round(after, 1)
        result["memory_mb"]["given_back"] = round(before_unload - after, 1)
        result["memory_mb"]["given_back_share_of_loaded"] = round((before_unload - after) / max(full - empty, 1e-9), 3)
        result["large_models"] = large_models(session, url, work, mme)
        mme.stop()

        single.start()
        result["throughput"]["single_model_invocations"] = median_run(
            f"{single.url}/invocations", one, args.duration, args.reps)
    finally:
        mme.stop()
        single.stop()
        shutil.rmtree(work, ignore_errors=True)
    t = result["throughput"]
    result["mme_vs_single_rps"] = round(t["mme_one_model"]["rps"] / t["single_model_invocations"]["rps"], 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "multimodel.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
