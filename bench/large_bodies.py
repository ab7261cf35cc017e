"""Peak memory of a worker answering one large CSV body (asynchronous inference), by body size.

The real serve stack (nginx, gunicorn with one worker, the bundled iris model trained by
algo/train) with SAGEMAKER_MAX_PAYLOAD_IN_MB=1024 and MODEL_SERVER_TIMEOUT=3600 answers one CSV
body of iris rows of each size; the worker's peak resident memory (VmHWM) less its resident
memory before the request is its growth. A fresh server per body, so each peak is that body's.
Every answer is checked: one label per line. `--whole` also runs the whole-body path
(MODEL_SERVER_CHUNK_MB=0) for comparison, at the smallest size only (it needs ~20x the body).

    python bench/large_bodies.py [--sizes 100 300 1000] [--whole] [--out bench/results]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import ALGO, PATH, REPO, free_port, wait_ping  # noqa: E402

MB = 1024 * 1024


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def worker_pid(serve: int) -> int:
    """The single gunicorn worker under serve: gunicorn's master's child."""
    def children(pid: int) -> list[int]:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for child in children(serve):
        if b"gunicorn" in Path(f"/proc/{child}/cmdline").read_bytes():
            workers = children(child)
            if workers:
                return workers[0]
    raise RuntimeError("no gunicorn worker found")


def body_file(size_mb: int, directory: Path) -> tuple[Path, int]:
    """A CSV body of iris rows (local_test/payload.csv repeated) of about size_mb, and its lines."""
    rows = (REPO / "local_test" / "payload.csv").read_bytes()
    if not rows.endswith(b"\n"):
        rows += b"\n"
    path = directory / f"body-{size_mb}.csv"
    repeats = size_mb * MB // len(rows) + 1
    with path.open("wb") as out:
        block = rows * 1000
        for _ in range(repeats // 1000):
            out.write(block)
        out.write(rows * (repeats % 1000))
    return path, repeats * rows.count(b"\n")


def measure(base: Path, body: Path, lines: int, chunk_mb: str | None) -> dict:
    port = free_port()
    env = {**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base), "SAGEMAKER_BIND_TO_PORT": str(port),
           "MODEL_SERVER_WORKERS": "1", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "1024", "MODEL_SERVER_TIMEOUT": "3600",
           "SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING"}
    if chunk_mb is not None:
        env["MODEL_SERVER_CHUNK_MB"] = chunk_mb
    process = subprocess.Popen([str(ALGO / "serve")], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    answer = body.with_suffix(".out")
    try:
        wait_ping(f"http://127.0.0.1:{port}", process, timeout=120)
        subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", "Content-Type: text/csv",
                        "--data-binary", "@" + str(body.parent / "payload-warm.csv"), f"http://127.0.0.1:{port}/invocations"],
                       check=True, timeout=60)
        worker = worker_pid(process.pid)
        before = status_kb(worker, "VmRSS")
        started = time.monotonic()
        result = subprocess.run(["curl", "-s", "-o", str(answer), "-w", "%{http_code}", "-H", "Content-Type: text/csv",
                                 "-H", "Accept: text/csv", "--data-binary", "@" + str(body),
                                 f"http://127.0.0.1:{port}/invocations"],
                                capture_output=True, text=True, check=True, timeout=3600)
        seconds = time.monotonic() - started
        peak = status_kb(worker, "VmHWM")
        with answer.open("rb") as f:
            answered = sum(block.count(b"\n") for block in iter(lambda: f.read(MB), b""))
        return {"body_mb": round(body.stat().st_size / MB), "rows": lines, "status": int(result.stdout),
                "answers": answered, "seconds": round(seconds, 1),
                "chunk_mb": "default" if chunk_mb is None else chunk_mb,
                "worker_rss_before_mb": round(before / 1024), "worker_peak_rss_mb": round(peak / 1024),
                "worker_growth_mb": round((peak - before) / 1024)}
    finally:
        answer.unlink(missing_ok=True)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--whole", action="store_true", help="also the whole-body path, at the smallest size")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-large-"))
    try:
        base = work / "ml"
        shutil.copytree(REPO / "local_test" / "test_dir", base, ignore=shutil.ignore_patterns(".gitkeep"))
        subprocess.run([str(ALGO / "train")], env={**os.environ, "PATH": PATH, "SAGEMAKER_BASE_DIR": str(base)},
                       check=True, capture_output=True, timeout=300)
        shutil.rmtree(base / "input")  # an endpoint has no training configuration
        shutil.copy(REPO / "local_test" / "payload.csv", work / "payload-warm.csv")
        runs = []
        for size in sorted(args.sizes):
            body, lines = body_file(size, work)
            modes = [None] + (["0"] if args.whole and size == min(args.sizes) else [])
            for chunk_mb in modes:
                run = measure(base, body, lines, chunk_mb)
                print(json.dumps(run), flush=True)
                runs.append(run)
            body.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"command": "python bench/large_bodies.py " + " ".join(sys.argv[1:]), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large_bodies.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
