"""Serving throughput, latency, start-up time and memory, against the real `serve` stack on loopback.

Three servers are measured in the same run, one after the other, with the same load:
  nginx-return-200  nginx answering /invocations itself (the proxy's own ceiling)
  flask-constant    the real serve stack (our nginx.conf, gunicorn_conf.py) in front of a minimal
                    Flask app that reads the body and returns a constant
  sagemaker-byo     the real serve stack with the real app and a model trained on iris

Each cell is the median of REPS wrk runs of DURATION seconds, with the CPU time each request cost
the server's processes (gunicorn's master and workers, nginx), read from /proc around the run.
Every run is bounded in time.

    python bench/serving.py [--duration 3] [--reps 3] [--out bench/results]

`--metrics` measures instead what recording the Prometheus metrics costs: the real stack with
metrics on and with MODEL_SERVER_METRICS=false, both running, their wrk runs alternated (on, off,
on, off...) so the machine's drift hits both alike; 1 and 10,000 rows at 4 connections by default.

    python bench/serving.py --metrics [--duration 5] [--reps 5] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
ALGO = REPO / "algo"
ROWS = (1, 100, 10_000)
PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # train and serve run this Python
CONNECTIONS = (1, 4, 16)
WORKERS = 2

CONSTANT_APP = '''"""A minimal Flask app for the ceiling: reads the body, returns a constant."""
from flask import Flask, Response, request

app = Flask("constant")


@app.get("/ping")
def ping():
    return Response(status=200)


@app.post("/invocations")
def invocations():
    request.get_data()
    return Response("setosa\\n", status=200, content_type="text/csv")
'''

NGINX_ONLY = """worker_processes 1;
daemon off;
pid {run}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    client_max_body_size 100m;
    client_body_buffer_size 1m;
    server {{
        listen {port};
        location / {{ return 200 "setosa\\n"; }}
    }}
}}
"""

WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "text/csv"
local f = io.open("{payload}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payload(rows: int, directory: Path) -> Path:
    from sklearn.datasets import load_iris

    data = load_iris().data
    lines = [",".join(f"{v:g}" for v in data[i % len(data)]) for i in range(rows)]
    path = directory / f"payload-{rows}.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_ping(url: str, process: subprocess.Popen, timeout: float = 60) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if requests.get(url + "/ping", timeout=5).status_code == 200:
                return time.monotonic() - started
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.01)
    raise RuntimeError("no /ping 200 within the timeout")


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        for child in map(int, children):
            found.append(child)
            frontier.append(child)
    return found


def pss_mb(pid: int) -> float:
    """Proportional set size of a process tree: shared pages counted once across it."""
    total = 0
    for proc in [pid, *descendants(pid)]:
        try:
            text = Path(f"/proc/{proc}/smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(match.group(1)) if match else 0
    return total / 1024


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by a process tree, by program: nginx, gunicorn, other."""
    tick = os.sysconf("SC_CLK_TCK")
    totals: dict[str, float] = {}
    for proc in [pid, *descendants(pid)]:
        try:
            stat = Path(f"/proc/{proc}/stat").read_text()
            command = Path(f"/proc/{proc}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # utime and stime are the 14th and 15th fields
        name = "nginx" if b"nginx" in command else "gunicorn" if b"gunicorn" in command else "other"
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return totals


class Target:
    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int):
        self.name, self.command, self.env, self.port = name, command, env, port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        self.process = subprocess.Popen(self.command, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        return wait_ping(self.url, self.process)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def wrk(url: str, script: Path, connections: int, duration: int) -> dict:
    threads = min(connections, 2)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency",
         "-s", str(script), url + "/invocations"],
        capture_output=True, text=True, timeout=duration + 30, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)

    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)", out, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50_ms": latency("50"), "p99_ms": latency("99"),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else ""}


def compare_metrics(args, env: dict[str, str], work: Path) -> int:
    """Metrics on against metrics off, runs alternated, in one run: bench/results/metrics.json."""
    rows_list, connections = args.rows or [1, 10_000], args.connections or 4
    targets = {}
    for name, extra in (("metrics-on", {}), ("metrics-off", {"MODEL_SERVER_METRICS": "false"})):
        port = free_port()
        targets[name] = Target(name, [str(ALGO / "serve")], {**env, **extra, "SAGEMAKER_BIND_TO_PORT": str(port)}, port)
    results = {"command": "python bench/serving.py " + " ".join(sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "kernel": platform.release()},
               "workers": WORKERS, "connections": connections, "duration_s": args.duration, "reps": args.reps,
               "load_average_at_start": os.getloadavg(), "cells": {}}
    try:
        for target in targets.values():
            target.start()
        time.sleep(0.5)
        for rows in rows_list:
            script = work / f"wrk-{rows}.lua"
            script.write_text(WRK_SCRIPT.format(payload=payload(rows, work)))
            runs: dict[str, list[float]] = {name: [] for name in targets}
            # The workers' CPU per request: what recording adds, less blurred than throughput by
            # whatever else the machine runs.
            cpu: dict[str, list[float]] = {name: [] for name in targets}
            for rep in range(args.reps):
                order = list(targets.values()) if rep % 2 == 0 else list(reversed(targets.values()))
                for target in order:
                    before = cpu_seconds(target.process.pid).get("gunicorn", 0.0)
                    run = wrk(target.url, script, connections, args.duration)
                    after = cpu_seconds(target.process.pid).get("gunicorn", 0.0)
                    if run["non_2xx"] or run["socket_errors"]:
                        raise RuntimeError(f"{target.name}: errors in the run: {run}")
                    runs[target.name].append(run["rps"])
                    cpu[target.name].append(round((after - before) / (run["rps"] * args.duration) * 1e6, 1))
            on, off = (statistics.median(runs[name]) for name in ("metrics-on", "metrics-off"))
            cpu_on, cpu_off = (statistics.median(cpu[name]) for name in ("metrics-on", "metrics-off"))
            results["cells"][f"{rows}x{connections}"] = {
                "metrics_on_rps": on, "metrics_off_rps": off, "on_over_off": round(on / off, 4),
                "metrics_on_runs": runs["metrics-on"], "metrics_off_runs": runs["metrics-off"],
                "gunicorn_cpu_us_per_request_on": cpu_on, "gunicorn_cpu_us_per_request_off": cpu_off,
                "cpu_on_runs": cpu["metrics-on"], "cpu_off_runs": cpu["metrics-off"]}
            print(f"rows={rows:<6} c={connections}: metrics on {on:8.0f} req/s, off {off:8.0f} req/s, "
                  f"on/off {on / off:.3f} (runs on {runs['metrics-on']}, off {runs['metrics-off']}); "
                  f"workers' CPU per request on {cpu_on} us, off {cpu_off} us", flush=True)
        results["load_average_at_end"] = os.getloadavg()
        scrape = requests.get(targets["metrics-on"].url + "/metrics", timeout=5).text
        results["scrape_bytes"] = len(scrape.encode())
    finally:
        for target in targets.values():
            target.stop()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'metrics.json'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--reps", type=int, default=3, help="runs per cell (the median is kept)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--only", nargs="*", help="measure only these targets")
    parser.add_argument("--metrics", action="store_true",
                        help="compare the real stack with metrics on and off (MODEL_SERVER_METRICS=false)")
    parser.add_argument("--rows", type=int, nargs="*", help="rows per request (--metrics: default 1 10000)")
    parser.add_argument("--connections", type=int, help="connections (--metrics: default 4)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    base = work / "ml"
    shutil.copytree(REPO / "local_test" / "test_dir", base, ignore=shutil.ignore_patterns(".gitkeep"))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "MODEL_SERVER_WORKERS": str(WORKERS), "PATH": PATH}
    subprocess.run([str(ALGO / "train")], env=env, check=True, capture_output=True, timeout=300)
    if args.metrics:
        try:
            return compare_metrics(args, env, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    constant_algo = work / "constant-algo"
    shutil.copytree(ALGO, constant_algo, ignore=shutil.ignore_patterns("__pycache__"))
    (constant_algo / "wsgi.py").write_text(CONSTANT_APP)

    nginx_run = work / "nginx-only"
    nginx_run.mkdir()
    targets = []
    port = free_port()
    (nginx_run / "nginx.conf").write_text(NGINX_ONLY.format(run=nginx_run, port=port))
    targets.append(Target("nginx-return-200", ["nginx", "-e", "stderr", "-p", str(nginx_run), "-c",
                                               str(nginx_run / "nginx.conf")], env, port))
    port = free_port()
    targets.append(Target("flask-constant", [str(constant_algo / "serve")],
                          {**env, "SAGEMAKER_BIND_TO_PORT": str(port)}, port))
    port = free_port()
    targets.append(Target("sagemaker-byo", [str(ALGO / "serve")],
                          {**env, "SAGEMAKER_BIND_TO_PORT": str(port)}, port))
    if args.only:
        targets = [t for t in targets if t.name in args.only]

    scripts = {}
    for rows in ROWS:
        path = payload(rows, work)
        scripts[rows] = work / f"wrk-{rows}.lua"
        scripts[rows].write_text(WRK_SCRIPT.format(payload=path))

    results = {"command": "python bench/serving.py " + " ".join(sys.argv[1:]),
               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "kernel": platform.release()},
               "workers": WORKERS, "duration_s": args.duration, "reps": args.reps, "targets": {}}
    for target in targets:
        startups = []
        for _ in range(args.reps):
            startups.append(target.start())
            target.stop()
        target.start()
        cells = {}
        try:
            time.sleep(0.5)
            rest_pss = pss_mb(target.process.pid)
            for rows in ROWS:
                for connections in CONNECTIONS:
                    runs = []
                    for _ in range(args.reps):
                        before = cpu_seconds(target.process.pid)
                        run = wrk(target.url, scripts[rows], connections, args.duration)
                        after = cpu_seconds(target.process.pid)
                        served = run["rps"] * args.duration
                        # where each request's CPU went, by program (not counting wrk itself)
                        run["cpu_us_per_request"] = {
                            name: round((after[name] - before.get(name, 0.0)) / served * 1e6)
                            for name in sorted(after) if served}
                        runs.append(run)
                    median = statistics.median(r["rps"] for r in runs)
                    cell = min(runs, key=lambda r: abs(r["rps"] - median))
                    cells[f"{rows}x{connections}"] = {**cell, "rps_runs": [r["rps"] for r in runs]}
                    cpu = " ".join(f"{k}={v}us" for k, v in cell["cpu_us_per_request"].items())
                    print(f"{target.name:18} rows={rows:<6} c={connections:<3} {cell['rps']:9.0f} req/s "
                          f"p50={cell['p50_ms']:.2f}ms p99={cell['p99_ms']:.2f}ms non2xx={cell['non_2xx']} "
                          f"cpu/request: {cpu}", flush=True)
            loaded_pss = pss_mb(target.process.pid)
        finally:
            target.stop()
        results["targets"][target.name] = {
            "startup_to_ping_s": statistics.median(startups), "startup_runs_s": startups,
            "pss_mb_at_rest": round(rest_pss, 1), "pss_mb_after_load": round(loaded_pss, 1), "cells": cells,
        }
        print(f"{target.name}: start-up to /ping {statistics.median(startups):.2f}s, "
              f"PSS at rest {rest_pss:.1f} MB, after load {loaded_pss:.1f} MB", flush=True)

    if {"flask-constant", "sagemaker-byo"} <= results["targets"].keys():
        ceiling = results["targets"]["flask-constant"]["cells"]
        ours = results["targets"]["sagemaker-byo"]["cells"]
        results["ratio_to_flask_constant"] = {k: round(ours[k]["rps"] / ceiling[k]["rps"], 3) for k in ours}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out / 'serving.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
