"""Where one request's time goes inside the app: the real Flask app of algo/predictor.py called
in-process as WSGI (no nginx, no gunicorn), against a minimal Flask app returning a constant,
for a 1-row and a 10,000-row CSV body, then a cProfile of the 1-row path. It runs with the
allocator settings the server gives its workers (settings.ALLOCATOR_DEFAULTS).

    python bench/request_path.py [--profile]
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALGO = REPO / "algo"


def environ(body: bytes) -> dict:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/invocations", "SERVER_NAME": "x", "SERVER_PORT": "80",
            "wsgi.url_scheme": "http", "CONTENT_TYPE": "text/csv", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "SERVER_PROTOCOL": "HTTP/1.0", "wsgi.errors": sys.stderr}


def per_call_us(app, body: bytes, calls: int, rounds: int = 5) -> float:
    """Best of `rounds` rounds of `calls` requests, in microseconds per request."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            b"".join(app(environ(body), lambda *args: None))
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


def main() -> int:
    sys.path.insert(0, str(ALGO))
    from sagemaker_byo import settings

    server_env = settings.server_environment()
    if any(os.environ.get(name) != server_env[name] for name in settings.ALLOCATOR_DEFAULTS):
        # glibc reads its allocator settings at start: run again with the server's
        os.execve(sys.executable, [sys.executable, *sys.argv], server_env)
    work = Path(tempfile.mkdtemp(prefix="bench-request-"))
    base = work / "ml"
    shutil.copytree(REPO / "local_test" / "test_dir", base, ignore=shutil.ignore_patterns(".gitkeep"))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run([str(ALGO / "train")], env=env, check=True, capture_output=True, timeout=300)
    os.environ.update(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_CONTAINER_LOG_LEVEL="WARNING")
    import sklearn
    from flask import Flask, Response, request
    from sklearn.datasets import load_iris

    from predictor import app

    sklearn.set_config(assume_finite=True)  # as the gunicorn workers run (gunicorn_conf.py)
    constant = Flask("constant")

    @constant.post("/invocations")
    def invocations():
        request.get_data()
        return Response("setosa\n", content_type="text/csv")

    data = load_iris().data
    for rows, calls in ((1, 3000), (10_000, 50)):
        body = ("\n".join(",".join(f"{v:g}" for v in data[i % 150]) for i in range(rows)) + "\n").encode()
        ours, ceiling = per_call_us(app, body, calls), per_call_us(constant, body, calls)
        print(f"{rows:>6} rows: sagemaker-byo {ours:8.1f} us, constant Flask {ceiling:8.1f} us per request")
    if "--profile" in sys.argv:
        import cProfile
        import pstats

        body = b"5.1,3.5,1.4,0.2\n"
        profile = cProfile.Profile()
        profile.runcall(lambda: [b"".join(app(environ(body), lambda *a: None)) for _ in range(3000)])
        pstats.Stats(profile).sort_stats("cumulative").print_stats(25)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
