"""GET /metrics of the real `algo/serve` (nginx, gunicorn, 2 workers), read with prometheus_client's
own parser: counts add up to the requests sent across both workers, survive a killed worker, and a
scrape answers while every worker is busy; the multi-model families; metrics turned off.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from procs import gunicorn_workers
from support import Server, have_nginx, require, wait_until

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serve unpickles `scripted_model.ScriptedModel`; pickle it under that name
import scripted_model  # noqa: E402

P = "sagemaker_byo_"
OK_BODIES = ["1,2,3,4\n", "-1,-2,-3,-4\n1,1,1,1\n", "0.5,0,0,0\n2,2,2,2\n-9,0,0,0\n"]  # 1, 2 and 3 rows
BAD_BODY = "1,2\n"  # two numbers where the model takes four: 400
FAIL_BODY = f"{scripted_model.FAIL},0,0,0\n"  # predict raises RuntimeError: 500


def sleep_body(seconds: float) -> str:
    return f"{scripted_model.SLEEP + seconds},0,0,0\n"


# -- helpers ------------------------------------------------------------------------------------

def scrape(server: Server, timeout: float = 2) -> dict[tuple[str, tuple], float]:
    """Every sample of GET /metrics, by (sample name, sorted labels)."""
    answer = requests.get(f"{server.url}/metrics", timeout=timeout)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((P + name, tuple(sorted(labels.items()))), 0.0)


def requests_counted(samples: dict, route: str, method: str, status: str) -> float:
    return value(samples, "requests_total", route=route, method=method, status=status)


def send_mix(server: Server, ok: int, bad: int, fail: int) -> int:
    """`ok` answered, `bad` refused (400) and `fail` failing (500) invocations, 4 at a time so both
    workers answer some; the rows answered."""
    bodies = [OK_BODIES[i % len(OK_BODIES)] for i in range(ok)] + [BAD_BODY] * bad + [FAIL_BODY] * fail
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(server.invoke, bodies))
    expected = [200] * ok + [400] * bad + [500] * fail
    assert [a.status_code for a in answers] == expected, [a.text for a in answers]
    return sum(body.count("\n") for body in bodies[:ok])


def counter_files(server: Server) -> set[str]:
    """The pids that wrote counts to this server's metrics folder."""
    folder = server.runtime / "metrics"
    return {p.stem.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scripted_dir(tmp_path_factory) -> Path:
    """A /opt/ml with the scripted model (no model.json: the server measures its input)."""
    base = tmp_path_factory.mktemp("metrics") / "ml"
    (base / "model").mkdir(parents=True)
    assert scripted_model.ScriptedModel.__module__ == "scripted_model"
    joblib.dump(scripted_model.ScriptedModel(), base / "model" / "model.joblib")
    return base


@pytest.fixture
def runtime_root():
    """A folder nginx's workers (user nobody) can reach, for the servers' runtime folders."""
    root = Path(tempfile.mkdtemp(prefix="metrics-test-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def start(scripted_dir: Path, runtime_root: Path):
    """Start a server of the scripted model with `start(nginx=..., **env)`; stopped afterwards.
    Each gets a runtime folder the test knows (SAGEMAKER_RUNTIME_DIR), to look at its metrics files."""
    started: list[Server] = []

    def run(nginx: bool = True, **env: str) -> Server:
        if nginx:
            require(have_nginx(), "nginx is not installed (apt-get install nginx)")
        runtime = env.setdefault("SAGEMAKER_RUNTIME_DIR", str(runtime_root / f"run-{len(started)}"))
        server = Server(scripted_dir, nginx=nginx, env={"PYTHONPATH": str(HERE), **env})
        server.runtime = Path(runtime)
        started.append(server)
        return server.start()

    yield run
    for server in started:
        server.stop()


# -- counts -------------------------------------------------------------------------------------

def test_counts_add_up_to_the_requests_sent_across_both_workers_statuses_included(start):
    server = start()
    before = scrape(server)
    rounds, rows = 0, 0
    # Rounds of 4 concurrent requests until both workers have answered some (on a loaded machine
    # one worker can take a whole round): the sum across workers is what is tested.
    while rounds < 10 and (rounds == 0 or len(counter_files(server)) < 2):
        rows += send_mix(server, ok=30, bad=8, fail=4)
        rounds += 1
    for _ in range(3):
        assert requests.get(f"{server.url}/execution-parameters", timeout=5).status_code == 200
    after = scrape(server)

    assert len(counter_files(server)) >= 2, f"one worker answered every request of {rounds} rounds"
    assert requests_counted(after, "/invocations", "POST", "200") == 30 * rounds
    assert requests_counted(after, "/invocations", "POST", "400") == 8 * rounds
    assert requests_counted(after, "/invocations", "POST", "500") == 4 * rounds
    assert requests_counted(after, "/execution-parameters", "GET", "200") == 3
    assert value(after, "request_duration_seconds_count", route="/invocations") == 42 * rounds
    assert value(after, "request_rows_count") == 30 * rounds
    assert value(after, "rows_answered_total") == value(after, "request_rows_sum") == rows
    for stage in ("input_fn", "predict_fn", "output_fn"):
        assert value(after, "stage_duration_seconds_count", stage=stage) == 30 * rounds
    assert value(after, "requests_in_flight") == 0
    assert value(after, "model_loaded") == 1
    assert value(after, "model_load_duration_seconds_count") >= 1
    assert value(after, "memory_limit_bytes") >= value(after, "memory_used_bytes") > 0
    # /metrics is served outside the workers: a scrape is no request of theirs.
    assert requests_counted(after, "/metrics", "GET", "200") == requests_counted(before, "/metrics", "GET", "200") == 0


def test_the_histograms_buckets_add_up_and_hold_a_sub_millisecond_and_an_hour(start):
    server = start()
    send_mix(server, ok=10, bad=0, fail=0)
    text = requests.get(f"{server.url}/metrics", timeout=2).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    buckets = [s for s in families[P + "stage_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["stage"] == "output_fn"]
    bounds = [float(s.labels["le"]) for s in buckets]
    assert bounds[0] <= 0.0001 and 3600 in bounds and bounds[-1] == float("inf")
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and counts[-1] == 10  # cumulative, every observation in +Inf


def test_unknown_paths_share_one_route_label_never_the_raw_path(start):
    server = start(nginx=False)  # behind nginx, the app never sees an unknown path
    paths = ["/nope", "/nope/deeper", "/invocations/x", "/" + "x" * 300]
    for path in paths:
        assert requests.get(f"{server.url}{path}", timeout=5).status_code == 404
    samples = scrape(server)
    routes = {dict(labels)["route"] for name, labels in samples if name == P + "requests_total"}
    assert routes <= {"/ping", "/invocations", "/execution-parameters", "/metrics", "other"}, routes
    assert requests_counted(samples, "other", "GET", "404") == len(paths)


def test_counts_survive_a_killed_worker_and_the_restart_is_counted(start):
    server = start()
    first = send_mix(server, ok=12, bad=3, fail=0)
    workers = gunicorn_workers(server, 2)
    victim = sorted(workers)[0]
    os.kill(victim, signal.SIGKILL)
    replaced = wait_until(lambda: (pids := gunicorn_workers(server, 2)) != workers and pids, 30,
                          what="gunicorn to replace the killed worker")
    assert victim not in replaced
    second = send_mix(server, ok=9, bad=2, fail=1)
    samples = scrape(server)
    assert requests_counted(samples, "/invocations", "POST", "200") == 21
    assert requests_counted(samples, "/invocations", "POST", "400") == 5
    assert requests_counted(samples, "/invocations", "POST", "500") == 1
    assert value(samples, "rows_answered_total") == first + second
    assert value(samples, "worker_restarts_total") == 1
    assert value(samples, "requests_in_flight") == 0  # the dead worker's gauge went with it


def test_a_scrape_answers_within_2_s_while_both_workers_are_busy(start):
    server = start()
    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(server.invoke, sleep_body(4)) for _ in range(2)]
        wait_until(lambda: server.log().count("sleeping 4s") >= 2, 20, what="both workers busy")
        started = time.monotonic()
        samples = scrape(server, timeout=2)
        took = time.monotonic() - started
        assert value(samples, "requests_in_flight") == 2
        assert [f.result().status_code for f in busy] == [200, 200]
    assert took < 2, f"the scrape took {took:.2f}s"
    after = scrape(server)
    assert value(after, "requests_in_flight") == 0
    assert value(after, "request_duration_seconds_bucket", route="/invocations", le="2.5") == 0
    assert value(after, "request_duration_seconds_bucket", route="/invocations", le="5.0") == 2


def test_a_body_scored_in_chunks_is_counted_with_all_its_rows(start):
    server = start(MODEL_SERVER_CHUNK_MB="1")
    body = "1,2,3,4\n" * 200_000  # 1.6 MB: two chunks
    assert server.invoke(body).status_code == 200
    samples = scrape(server)
    assert value(samples, "chunked_bodies_total") == 1
    assert value(samples, "rows_answered_total") == 200_000
    assert value(samples, "stage_duration_seconds_count", stage="predict_fn") == 2  # one per chunk


def test_without_nginx_the_workers_answer_metrics_with_every_workers_counts(start):
    server = start(nginx=False)
    send_mix(server, ok=10, bad=2, fail=0)
    samples = scrape(server)
    assert requests_counted(samples, "/invocations", "POST", "200") == 10
    assert requests_counted(samples, "/invocations", "POST", "400") == 2


def test_metrics_turned_off_answer_404_and_the_server_still_serves(start):
    server = start(MODEL_SERVER_METRICS="false")
    assert server.invoke(OK_BODIES[0]).status_code == 200
    answer = requests.get(f"{server.url}/metrics", timeout=2)
    assert answer.status_code == 404 and "MODEL_SERVER_METRICS=false" in answer.text
    assert not (server.runtime / "metrics").exists()


def test_a_fresh_start_counts_from_zero(start, runtime_root):
    first = start(SAGEMAKER_RUNTIME_DIR=str(runtime_root / "shared"))
    send_mix(first, ok=5, bad=0, fail=0)
    first.stop()
    second = start(SAGEMAKER_RUNTIME_DIR=str(runtime_root / "shared"))
    assert requests_counted(scrape(second), "/invocations", "POST", "200") == 0


# -- multi-model endpoints -----------------------------------------------------------------------

GIB = 1024 ** 3


def test_multi_model_families_count_loads_unloads_memory_refusals_and_memory(start, scripted_dir, tmp_path):
    """A fake cgroup (the files resources.py reads) whose usage the test sets, for a 507."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(str(4 * GIB))
    (cgroup / "memory.current").write_text(str(GIB))
    (cgroup / "memory.stat").write_text("inactive_file 0\n")
    (tmp_path / "self-cgroup").write_text("0::/\n")
    folders = {}
    for name in ("a", "b", "c"):
        folders[name] = tmp_path / "models" / name / "model"
        folders[name].mkdir(parents=True)
        (folders[name] / "model.joblib").write_bytes((scripted_dir / "model" / "model.joblib").read_bytes())
    server = start(SAGEMAKER_MULTI_MODEL="true", SAGEMAKER_CGROUP_ROOT=str(cgroup),
                   SAGEMAKER_PROC_SELF_CGROUP=str(tmp_path / "self-cgroup"))

    def load(name: str, url: Path) -> int:
        body = {"model_name": name, "url": str(url)}
        return requests.post(f"{server.url}/models", json=body, timeout=60).status_code

    assert load("a", folders["a"]) == 200
    assert load("b", folders["b"]) == 200
    assert load("a", folders["a"]) == 409
    assert load("missing", tmp_path / "nowhere") == 404
    for name in ("a", "b", "a"):
        answer = requests.post(f"{server.url}/models/{name}/invoke", data=OK_BODIES[1],
                               headers={"Content-Type": "text/csv"}, timeout=60)
        assert answer.status_code == 200, answer.text
    (cgroup / "memory.current").write_text(str(int(3.9 * GIB)))
    assert load("c", folders["c"]) == 507
    (cgroup / "memory.current").write_text(str(GIB))
    assert requests.delete(f"{server.url}/models/b", timeout=60).status_code == 200

    samples = scrape(server)
    assert value(samples, "models_loaded") == 1
    assert value(samples, "model_loads_total", outcome="loaded") == 2
    assert value(samples, "model_loads_total", outcome="conflict") == 1
    assert value(samples, "model_loads_total", outcome="not_found") == 1
    assert value(samples, "model_loads_total", outcome="insufficient_memory") == 1
    assert value(samples, "model_unloads_total") == 1
    assert value(samples, "model_load_duration_seconds_count") >= 2
    assert value(samples, "memory_limit_bytes") == 4 * GIB
    assert value(samples, "memory_used_bytes") == GIB
    assert value(samples, "models_memory_bytes") > 0
    assert requests_counted(samples, "/models/{name}/invoke", "POST", "200") == 3
    assert requests_counted(samples, "/models", "POST", "507") == 1
    assert requests_counted(samples, "/models/{name}", "DELETE", "200") == 1
    names = {v for (_, labels) in samples for k, v in labels if k == "route"}
    assert not names & {"a", "b", "c", "missing"}, "a model name became a label"
