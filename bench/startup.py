"""Start-up: `serve` to the first /ping 200 (the model loaded), in the image and on the host.

A model is trained once (`IMAGE train`, or `algo/train` on the host with --host-only) into a
temporary /opt/ml. Each run then starts the server and polls /ping every 5 ms until it answers
200, recording any other status on the way (a 502 would be a bug: the first /ping must never be
one). In the image the clock starts before `docker run` and, separately, at the container's
start (`State.StartedAt`), which leaves out Docker's own set-up; on the host it starts before
`algo/serve`. The phases come from serve's own log lines (their millisecond timestamps):
Python and the supervisor, gunicorn to the loaded model, the workers and nginx, the first 200.
The CPU time (user and system) of serve and all its processes at the first 200 is recorded too:
a loaded machine stretches the wall-clock time far more than it changes that.

    python bench/startup.py [--image IMAGE ...] [--variant LABEL IMAGE ARGS ...] [--reps 9]
                            [--no-host] [--out FILE]

With several --image options (say the image before and after a change), the targets' runs
alternate, so the machine's changing load falls on each alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALGO = REPO / "algo"
TEST_DIR = REPO / "local_test" / "test_dir"
PATH = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # serve runs this Python
RUN_TIMEOUT = 60  # seconds a single start may take before the run counts as failed

# serve's log lines that mark the phases, by what they say.
MARKS = {
    "serve_logging": re.compile(r"INFO serve: serving on port"),
    "gunicorn_started": re.compile(r"INFO serve: started gunicorn"),
    "model_loaded": re.compile(r"INFO serve: model loaded"),
    "nginx_started": re.compile(r"INFO serve: started nginx"),
}
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port: int) -> int | None:
    """/ping's status, or None while nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/ping")
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def wait_ping(port: int, alive, timeout: float = RUN_TIMEOUT) -> tuple[float, list[int]]:
    """Wall-clock time of the first 200, and every other status seen before it."""
    others: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = ping(port)
        if status == 200:
            return time.time(), others
        if status is not None:
            others.append(status)
        if not alive():
            raise RuntimeError("the server exited before /ping answered 200")
        time.sleep(0.005)
    raise RuntimeError(f"no /ping 200 within {timeout}s")


def phases(log: str, start: float, ready: float, utc: bool) -> dict[str, float]:
    """Seconds from `start` to each marked log line, and to the first 200."""
    found: dict[str, float] = {}
    for line in log.splitlines():
        stamp = STAMP.match(line)
        if not stamp:
            continue
        when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
        if utc:
            when = when.replace(tzinfo=dt.UTC)
        at = when.timestamp()
        for name, pattern in MARKS.items():
            if name not in found and pattern.search(line):
                found[name] = round(at - start, 3)
    found["ping_200"] = round(ready - start, 3)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` and all its descendants alive now: what the start cost
    the machine, which a loaded machine changes much less than the wall-clock time."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, frontier = 0, [pid]
    while frontier:
        current = frontier.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        frontier.extend(children.get(current, []))
    return round(total / os.sysconf("SC_CLK_TCK"), 3)


def docker_pid(name: str) -> int:
    """The host's pid of the container's first process (serve)."""
    return int(subprocess.run(["docker", "inspect", "--format", "{{.State.Pid}}", name],
                              capture_output=True, text=True, timeout=30, check=True).stdout)


def docker_started_at(name: str) -> float:
    text = subprocess.run(["docker", "inspect", "--format", "{{.State.StartedAt}}", name],
                          capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    # RFC 3339 with nanoseconds, in UTC.
    head, _, frac = text.rstrip("Z").partition(".")
    when = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return when.timestamp() + float("0." + (frac or "0"))


def run_image(image: str, base: Path, extra: list[str] = ()) -> dict:
    port, name = free_port(), f"byo-startup-{uuid.uuid4().hex[:10]}"
    command = ["docker", "run", "--rm", "--network", "host", "--name", name, "-v", f"{base}:/opt/ml",
               "-e", f"SAGEMAKER_BIND_TO_PORT={port}", *extra, image, "serve"]
    with tempfile.TemporaryFile("w+") as log:
        began = time.time()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready, others = wait_ping(port, lambda: process.poll() is None)
            cpu = tree_cpu_seconds(docker_pid(name))
            started = docker_started_at(name)
        finally:
            subprocess.run(["docker", "stop", "-t", "10", name], capture_output=True, timeout=60)
            process.wait(timeout=60)
        log.seek(0)
        text = log.read()
    return {"from_docker_run_s": round(ready - began, 3), "from_container_start_s": round(ready - started, 3),
            "cpu_s": cpu, "other_statuses": others,
            "phases_from_container_start_s": phases(text, started, ready, utc=True)}


def run_host(base: Path, algo: Path = ALGO) -> dict:
    port = free_port()
    env = {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(port)}
    with tempfile.TemporaryFile("w+") as log:
        began = time.time()
        process = subprocess.Popen([str(algo / "serve")], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            ready, others = wait_ping(port, lambda: process.poll() is None)
            cpu = tree_cpu_seconds(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.seek(0)
        text = log.read()
    return {"from_serve_s": round(ready - began, 3), "cpu_s": cpu, "other_statuses": others,
            "phases_from_serve_s": phases(text, began, ready, utc=False)}


def train(base: Path, image: str | None) -> None:
    shutil.copytree(TEST_DIR, base)
    for sub in ("model", "output"):
        shutil.rmtree(base / sub, ignore_errors=True)
        (base / sub).mkdir()
    if image:
        command = ["docker", "run", "--rm", "--network", "host", "-v", f"{base}:/opt/ml", image, "train"]
        env = None
    else:
        command, env = [str(ALGO / "train")], {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base)}
    subprocess.run(command, env=env, capture_output=True, timeout=300, check=True)
    # The container writes as root; let the host's serve and the next runs read it all.
    for path in base.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o666)


IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def import_profile(image: str, base: Path) -> dict:
    """One more start with PYTHONPROFILEIMPORTTIME=1: the modules serve's processes import, their
    own time summed by top-level package (python -X importtime, which itself slows imports down
    by a fifth or so), and the slowest single modules."""
    port, name = free_port(), f"byo-startup-{uuid.uuid4().hex[:10]}"
    command = ["docker", "run", "--rm", "--network", "host", "--name", name, "-v", f"{base}:/opt/ml",
               "-e", f"SAGEMAKER_BIND_TO_PORT={port}", "-e", "PYTHONPROFILEIMPORTTIME=1", image, "serve"]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ping(port, lambda: process.poll() is None)
        finally:
            subprocess.run(["docker", "stop", "-t", "10", name], capture_output=True, timeout=60)
            process.wait(timeout=60)
        log.seek(0)
        lines = log.read().splitlines()
    by_package: dict[str, int] = {}
    modules = []
    for line in lines:
        found = IMPORT_LINE.match(line)
        if found:
            own, module = int(found.group(1)), found.group(4)
            package = module.split(".")[0]
            by_package[package] = by_package.get(package, 0) + own
            modules.append((own, module))
    total = sum(by_package.values())
    return {
        "modules_imported": len(modules), "total_import_ms": round(total / 1000),
        "own_time_by_top_level_package_ms": {
            k: round(v / 1000) for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]},
        "slowest_modules_own_ms": {m: round(t / 1000, 1) for t, m in sorted(modules, reverse=True)[:15]},
    }


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}


def summarize(runs: list[dict], keys: list[str]) -> dict:
    result = {key: summary([r[key] for r in runs]) for key in keys}
    phase_key = next(k for k in runs[0] if k.startswith("phases"))
    result[phase_key + "_median"] = {
        p: round(statistics.median(r[phase_key][p] for r in runs if p in r[phase_key]), 3)
        for p in runs[0][phase_key]}
    result["non_200_statuses_before_ready"] = sorted({s for r in runs for s in r["other_statuses"]})
    result["runs"] = runs
    return result


def image_size(image: str) -> int:
    return int(subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", image],
                              capture_output=True, text=True, timeout=30, check=True).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", action="append",
                        help="an image to start (repeat to compare: their runs alternate); "
                             "default sagemaker-byo:slim")
    parser.add_argument("--variant", nargs=3, action="append", default=[], metavar=("LABEL", "IMAGE", "ARGS"),
                        help="also start IMAGE with these extra `docker run` arguments (one string), "
                             "e.g. a file mounted over one of the image's")
    parser.add_argument("--reps", type=int, default=9, help="starts per target")
    parser.add_argument("--no-host", action="store_true", help="skip algo/serve on the host")
    parser.add_argument("--host-only", action="store_true", help="only algo/serve on the host")
    parser.add_argument("--host-algo", type=Path, action="append", default=[],
                        help="also serve on the host from this algo folder (e.g. a `git worktree` of "
                             "the commit before a change)")
    parser.add_argument("--importtime", action="store_true",
                        help="also profile the imports of one start of each image (PYTHONPROFILEIMPORTTIME)")
    parser.add_argument("--label", default="", help="a note stored with the results")
    parser.add_argument("--out", type=Path, help="write the results to this JSON file")
    args = parser.parse_args()
    images = [] if args.host_only else (args.image or ["sagemaker-byo:slim"])

    # Targets alternate run by run, so a change in the machine's load falls on all of them alike.
    targets: dict[str, tuple] = {}
    base = Path(tempfile.mkdtemp(prefix="byo-startup-")) / "ml"
    try:
        train(base, images[0] if images else None)
        for image in images:
            targets[image] = (lambda image=image: run_image(image, base),
                              ["from_container_start_s", "from_docker_run_s", "cpu_s"])
        for label, image, extra in args.variant:
            targets[label] = (lambda image=image, extra=shlex.split(extra): run_image(image, base, extra),
                              ["from_container_start_s", "from_docker_run_s", "cpu_s"])
        if not args.no_host:
            targets["host: algo/serve"] = (lambda: run_host(base), ["from_serve_s", "cpu_s"])
            for algo in args.host_algo:
                targets[f"host: {algo}/serve"] = (lambda algo=algo: run_host(base, algo.resolve()),
                                                  ["from_serve_s", "cpu_s"])
        load_before = os.getloadavg()
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for i in range(args.reps):
            for name, (runner, keys) in targets.items():
                runs[name].append(runner())
                print(f"{name} run {i + 1}/{args.reps}: "
                      + ", ".join(f"{k} {runs[name][-1][k]:.3f}s" for k in keys), flush=True)
        result: dict = {
            "command": "python bench/startup.py " + " ".join(sys.argv[1:]), "label": args.label,
            "reps": args.reps, "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "load_average_before": load_before,
                                           "load_average_after": os.getloadavg()},
            "targets": {}}
        for name, (_, keys) in targets.items():
            entry = summarize(runs[name], keys)
            if name in images:
                entry = {"image_size_bytes": image_size(name), **entry}
                if args.importtime:
                    entry["import_profile"] = import_profile(name, base)
            for label, image, extra in args.variant:
                if name == label:
                    entry = {"image": image, "docker_run_arguments": extra, **entry}
            result["targets"][name] = entry
    finally:
        shutil.rmtree(base.parent, ignore_errors=True)
    for name, entry in result["targets"].items():
        key = next(k for k in entry if k.startswith("from_"))
        print(f"{name}: {key} median {entry[key]['median']:.3f}s "
              f"({entry[key]['min']:.3f}-{entry[key]['max']:.3f}, n={entry[key]['n']}); "
              f"CPU of serve's processes median {entry['cpu_s']['median']:.3f}s "
              f"({entry['cpu_s']['min']:.3f}-{entry['cpu_s']['max']:.3f})")
    text = json.dumps(result, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
