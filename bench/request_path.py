"""Where one request's time goes inside the app: the real Flask app of algo/predictor.py called
in-process as WSGI (no nginx, no gunicorn), against a minimal Flask app returning a constant,
for a 1-row and a 10,000-row CSV body (CPU time and minor page faults per request), then the
parts of the path on their own (--stages, with what recording one request's metrics costs; set
MODEL_SERVER_METRICS=false to measure the path without them) and a cProfile of the 1-row path
(--profile). It runs
with the allocator settings the server gives its workers (settings.ALLOCATOR_DEFAULTS), or with
glibc's own (--glibc-defaults).

    python bench/request_path.py [--stages] [--profile] [--glibc-defaults]
"""

from __future__ import annotations

import io
import os
import resource
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


def per_call(call, calls: int, rounds: int = 5) -> tuple[float, float]:
    """Best of `rounds` rounds of `calls` calls: CPU microseconds and minor page faults per call."""
    best_us, faults = float("inf"), 0.0
    for _ in range(rounds):
        before, started = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
        for _ in range(calls):
            call()
        us = (time.process_time() - started) / calls * 1e6
        if us < best_us:
            best_us = us
            faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
    return best_us, faults


def wsgi_call(app, body: bytes):
    return lambda: b"".join(app(environ(body), lambda *args: None))


def stages(model, plain, served, body: bytes) -> None:
    """The parts of a 10,000-row request, and a 1-row predict of the served (memoized) model and of
    the same model as joblib loads it (`plain`); holding the rows to the model's contract (`served`)
    in the dtype it records and in float64, what converting to the model's dtype costs."""
    import dataclasses

    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as arrow_csv
    import pyarrow.parquet as pq

    from sagemaker_byo import contract
    from sagemaker_byo.serving import decoders, encoders

    no_header = arrow_csv.ReadOptions(autogenerate_column_names=True, use_threads=False)
    buffer = io.BytesIO()  # the same rows as a Parquet body
    columns = decoders.decode_csv(body).T
    pq.write_table(pa.Table.from_arrays(list(columns), names=[f"f{j}" for j in range(len(columns))]), buffer)
    parquet = buffer.getvalue()
    parts = {
        "read CSV, decode_csv": lambda: decoders.decode_csv(body),
        "read CSV, vectorised reader": lambda: decoders._short_decimals(body),
        "read CSV, pandas.read_csv": lambda: pd.read_csv(io.BytesIO(body), header=None, dtype=np.float64),
        # tried for issue 22: with the workers' allocator settings no faster than the readers above
        "read CSV, pyarrow.csv": lambda: arrow_csv.read_csv(pa.BufferReader(body), read_options=no_header),
        "read the rows as Parquet": lambda: decoders.decode(parquet, "application/x-parquet"),
    }
    rows = decoders.decode_csv(body)
    as_float64 = dataclasses.replace(served, dtype="float64")
    for name, held in ((f"conform, {served.dtype}", served), ("conform, float64", as_float64)):
        for some in (rows[:1], rows):
            cost = per_call(lambda r=some, c=held: contract.conform(r, c), 2000)[0]
            print(f"  {len(some):5} rows, {name:28} {cost:8.1f} us")
    rows = contract.conform(rows, served)  # as the server hands them to the model
    labels = model.predict(rows)
    parts["predict"] = lambda: model.predict(rows)
    parts["write labels, join"] = lambda: encoders.encode_csv(labels)
    parts["write labels, str() each"] = lambda: ("\n".join(map(str, labels.tolist())) + "\n").encode()
    for name, call in parts.items():
        print(f"  10000 rows, {name:28} {per_call(call, 20)[0]:8.1f} us")
    one = rows[:1]
    for name, fitted in (("as loaded", plain), ("memoized", model)):
        print(f"      1 row,  predict, {name:19} {per_call(lambda m=fitted: m.predict(one), 3000)[0]:8.1f} us")
    import sklearn

    with sklearn.config_context(assume_finite=True):  # what the finite check, on for every request, costs
        unchecked = per_call(lambda: model.predict(one), 3000)[0]
    print(f"      1 row,  predict, {'memoized, no check':19} {unchecked:8.1f} us")
    from sagemaker_byo.serving import metrics

    record = metrics.recorder()
    if record.enabled:  # what one answered invocation records, alone (MODEL_SERVER_METRICS=false: nothing)
        def one_request():
            record.request_started()
            record.stages_timed(0.00002, 0.00003, 0.00001)
            record.answered(1)
            record.request_finished("/invocations", "POST", "200", 0.0001)
        print(f"  metrics, one request's recording      {per_call(one_request, 20000)[0]:8.1f} us")


def main() -> int:
    sys.path.insert(0, str(ALGO))
    from sagemaker_byo import settings

    server_env = settings.server_environment()
    if "--glibc-defaults" not in sys.argv and any(
            os.environ.get(name) != server_env[name] for name in settings.ALLOCATOR_DEFAULTS):
        # glibc reads its allocator settings at start: run again with the server's
        os.execve(sys.executable, [sys.executable, *sys.argv], server_env)
    work = Path(tempfile.mkdtemp(prefix="bench-request-"))
    base = work / "ml"
    shutil.copytree(REPO / "local_test" / "test_dir", base, ignore=shutil.ignore_patterns(".gitkeep"))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    subprocess.run([str(ALGO / "train")], env=env, check=True, capture_output=True, timeout=300)
    os.environ.update(SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_CONTAINER_LOG_LEVEL="WARNING")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(work / "metrics"))  # as serve gives gunicorn
    (work / "metrics").mkdir()
    from flask import Flask, Response, request
    from sklearn.datasets import load_iris

    from predictor import app

    constant = Flask("constant")

    @constant.post("/invocations")
    def invocations():
        request.get_data()
        return Response("setosa\n", content_type="text/csv")

    data = load_iris().data
    for rows, calls in ((1, 3000), (10_000, 50)):
        body = ("\n".join(",".join(f"{v:g}" for v in data[i % 150]) for i in range(rows)) + "\n").encode()
        ours, ours_faults = per_call(wsgi_call(app, body), calls)
        ceiling, _ = per_call(wsgi_call(constant, body), calls)
        print(f"{rows:>6} rows: sagemaker-byo {ours:8.1f} us ({ours_faults:.0f} page faults), "
              f"constant Flask {ceiling:8.1f} us per request")
    if "--stages" in sys.argv:
        from predictor import model_fn

        loaded = app.extensions["sagemaker_model"]
        stages(loaded.model, model_fn(str(base / "model")), loaded.contract, body)
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
