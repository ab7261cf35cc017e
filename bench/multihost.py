"""LightGBM on one, two and three hosts: each host's peak memory against the data's size, and fit times.

Each host is a real `algo/train` process with its own /opt/ml and resourceconfig.json, in a
network namespace of its own (tests/netns.py: addresses from 198.18.0.0/15, removed afterwards),
as tests/integration/test_multihost.py runs them. The data is a 20-feature CSV (label first, no
header) cut into 6 files, so 1, 2 and 3 hosts get equal shares (ShardedByS3Key). For each run:
every host's peak resident memory (ru_maxrss of its own process, from wait4), the rows it held,
the leader's "fit finished in" and the job's wall time. Needs root and iproute2.

All hosts share this machine's CPUs, so the times say what the cluster costs (start-up, the
network between namespaces), not how a job on several instances speeds up: see bench/NOTES.md.

    python bench/multihost.py [--rows 150000 300000 600000] [--hosts 1 2 3] [--out bench/results/multihost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from netns import Network, can_make_namespaces  # noqa: E402

FEATURES = 20
FILES = 6  # divides among 1, 2 and 3 hosts
TIMEOUT = 900
# The hosts share the machine's cores: OpenMP threads that sleep while they wait (see test_multihost.py).
HOST_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "SAGEMAKER_CLUSTER_WAIT": "120"}
HYPERPARAMETERS = {"algorithm": "lightgbm", "n_estimators": "50"}


def make_files(folder: Path, rows: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    paths = []
    for index, count in enumerate(np.diff(np.linspace(0, rows, FILES + 1).astype(int))):
        x = rng.random((count, FEATURES))
        label = (x[:, 0] + x[:, 1] * x[:, 2] + 0.1 * rng.standard_normal(count) > 0.8).astype(int)
        path = folder / f"part-{index}.csv"
        np.savetxt(path, np.column_stack([label, x]), fmt=["%d"] + ["%.5f"] * FEATURES, delimiter=",")
        paths.append(path)
    return paths


def job_dir(root: Path, host: str, hosts: list[str], files: list[Path]) -> Path:
    ml = root / host
    config = ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}))
    (config / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    (config / "inputdataconfig.json").write_text(json.dumps({"training": {
        "ContentType": "text/csv", "TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"}}))
    data = ml / "input" / "data" / "training"
    data.mkdir(parents=True)
    for path in files:
        os.link(path, data / path.name)
    (ml / "model").mkdir()
    (ml / "output").mkdir()
    return ml


def environment(ml: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "MODEL_SERVER_"))}
    env.update(HOST_ENV, SAGEMAKER_BASE_DIR=str(ml), PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}")
    return env


def run(root: Path, files: list[Path], count: int) -> dict:
    hosts = [f"algo-{i + 1}" for i in range(count)]
    mine = {h: files[i::count] for i, h in enumerate(hosts)}
    dirs = {h: job_dir(root, h, hosts, mine[h]) for h in hosts}
    net = Network(hosts).create() if count > 1 else None
    peaks: dict[str, int] = {}
    codes: dict[str, int] = {}
    procs = {}
    started = time.monotonic()
    try:
        for host in hosts:
            argv = [str(REPO / "algo" / "train")]
            log = open(root / f"{host}.log", "wb")  # noqa: SIM115 - closed with the process
            procs[host] = subprocess.Popen(net.command(host, argv) if net else argv, env=environment(dirs[host]),
                                           stdout=log, stderr=subprocess.STDOUT)

        def reap(host: str) -> None:  # ip netns exec execs the command: the pid is train's own
            _, status, usage = os.wait4(procs[host].pid, 0)
            codes[host], peaks[host] = os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024
            procs[host].returncode = codes[host]

        waiters = [threading.Thread(target=reap, args=(h,)) for h in hosts]
        for waiter in waiters:
            waiter.start()
        for waiter in waiters:
            waiter.join(max(1.0, started + TIMEOUT - time.monotonic()))
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
        if net:
            net.remove()
    wall = time.monotonic() - started
    leader_log = (root / "algo-1.log").read_text(errors="replace")
    if codes != {h: 0 for h in hosts}:
        raise RuntimeError(f"{count} host(s): exit codes {codes}\n{leader_log[-3000:]}")
    fit = re.search(r"fit finished in ([\d.]+)s", leader_log)
    description = json.loads((dirs["algo-1"] / "model" / "model.json").read_text())
    return {
        "hosts": count,
        "rows_per_host": description.get("hosts") or {"algo-1": description["training_rows"]},
        "csv_bytes_per_host": {h: sum(p.stat().st_size for p in mine[h]) for h in hosts},
        "peak_rss_bytes_per_host": peaks,
        "fit_seconds": float(fit[1]) if fit else None,
        "wall_seconds": round(wall, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[150_000, 300_000, 600_000])
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    ok, why = can_make_namespaces()
    if not ok and any(h > 1 for h in args.hosts):
        parser.error(why)
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-multihost-") as tmp:
        for rows in args.rows:
            files = make_files(Path(tmp) / f"data-{rows}", rows)
            for count in args.hosts:
                root = Path(tmp) / f"run-{rows}-{count}"
                result = {"rows": rows, **run(root, files, count)}
                runs.append(result)
                peaks = ", ".join(f"{h} {b / 2**20:.0f} MiB" for h, b in result["peak_rss_bytes_per_host"].items())
                print(f"{rows:>8} rows, {count} host(s): peak {peaks}; fit {result['fit_seconds']} s, "
                      f"wall {result['wall_seconds']} s", flush=True)
                shutil.rmtree(root, ignore_errors=True)
    result = {"command": "python bench/multihost.py " + " ".join(sys.argv[1:]),
              "cpus": os.cpu_count(), "features": FEATURES, "hyperparameters": HYPERPARAMETERS,
              "host_environment": HOST_ENV, "runs": runs}
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
