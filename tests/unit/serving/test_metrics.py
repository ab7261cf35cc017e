"""The metrics: route labels of bounded cardinality, what one request records, prometheus_client's
multiprocess files summed across processes, the app's /metrics, and recording turned off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sagemaker_byo.serving import metrics
from support import ALGO

P = "sagemaker_byo_"


class Halves:
    """Not scikit-learn: 'big' where a row's sum passes 10, else 'small'."""

    n_features_in_ = 4

    def predict(self, data):
        rows = np.asarray(data, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != 4:
            raise ValueError("Halves takes rows of 4 numbers")
        return np.where(rows.sum(axis=1) > 10, "big", "small")


def sample(name: str, **labels: str) -> float:
    """A value this process recorded, as a scrape of its folder reads it."""
    found = parse(metrics.exposition(metrics.recorder().folder))
    return found.get((P + name, tuple(sorted(labels.items()))), 0.0)


def parse(text: str | bytes) -> dict[tuple[str, tuple], float]:
    text = text.decode() if isinstance(text, bytes) else text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.parametrize(("path", "label"), [
    ("/ping", "/ping"),
    ("/invocations", "/invocations"),
    ("/execution-parameters", "/execution-parameters"),
    ("/metrics", "/metrics"),
    ("/models", "/models"),
    ("/models/my-model", "/models/{name}"),
    ("/models/my%20model/invoke", "/models/{name}/invoke"),
    ("/models/invoke", "/models/{name}"),  # a model named "invoke"
    ("/models//invoke", "other"),
    ("/models/a/b", "other"),
    ("/models/", "other"),
    ("/invocations/", "other"),
    ("/nope", "other"),
    ("/" + "x" * 5000, "other"),
    ("", "other"),
])
def test_every_path_is_one_of_a_fixed_set_of_route_labels(path, label):
    assert metrics.route(path) == label


def test_an_answered_invocation_records_its_request_stages_and_rows(make_client, make_hooks):
    client = make_client(make_hooks(Halves()))
    route = {"route": "/invocations", "method": "POST", "status": "200"}
    before = {name: sample(name, **labels) for name, labels in [
        ("requests_total", route), ("request_rows_count", {}), ("rows_answered_total", {}),
        ("stage_duration_seconds_count", {"stage": "predict_fn"}),
        ("request_duration_seconds_count", {"route": "/invocations"})]}
    answer = client.post("/invocations", data="1,2,3,4\n9,9,9,9\n0,0,0,0\n", content_type="text/csv")
    assert answer.status_code == 200 and answer.text.splitlines() == ["small", "big", "small"]
    assert sample("requests_total", **route) == before["requests_total"] + 1
    assert sample("request_rows_count") == before["request_rows_count"] + 1
    assert sample("rows_answered_total") == before["rows_answered_total"] + 3
    assert sample("stage_duration_seconds_count", stage="predict_fn") == \
        before["stage_duration_seconds_count"] + 1
    assert sample("request_duration_seconds_count", route="/invocations") == \
        before["request_duration_seconds_count"] + 1
    assert sample("requests_in_flight") == 0


def test_a_refused_invocation_is_counted_by_its_status_without_rows(make_client, make_hooks):
    client = make_client(make_hooks(Halves()))
    refused = {"route": "/invocations", "method": "POST", "status": "400"}
    before, rows = sample("requests_total", **refused), sample("rows_answered_total")
    assert client.post("/invocations", data="1,2\n", content_type="text/csv").status_code == 400
    assert sample("requests_total", **refused) == before + 1
    assert sample("rows_answered_total") == rows


def test_a_hook_that_fails_is_counted_as_a_500(make_client, make_hooks):
    def broken(data, model, invocation):
        raise RuntimeError("a bug")

    client = make_client(make_hooks(Halves(), predict_fn=broken))
    failed = {"route": "/invocations", "method": "POST", "status": "500"}
    before = sample("requests_total", **failed)
    assert client.post("/invocations", data="1,2,3,4\n", content_type="text/csv").status_code == 500
    assert sample("requests_total", **failed) == before + 1


def test_an_odd_method_is_one_label_not_the_clients_word(make_client, make_hooks):
    client = make_client(make_hooks(Halves()))
    client.open("/invocations", method="BREW")
    names = {dict(labels)["method"] for (name, labels) in parse(metrics.exposition(metrics.recorder().folder))
             if name == P + "requests_total"}
    assert "BREW" not in names and "other" in names


def test_the_apps_metrics_route_answers_prometheus_text_with_this_processs_counts(make_client, make_hooks):
    client = make_client(make_hooks(Halves()))
    client.post("/invocations", data="1,2,3,4\n", content_type="text/csv")
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    samples = parse(answer.data)
    assert samples[(P + "requests_total", (("method", "POST"), ("route", "/invocations"), ("status", "200")))] >= 1
    assert samples[(P + "memory_limit_bytes", ())] > 0


def test_metrics_turned_off_the_app_answers_404(make_client, make_hooks, make_config):
    client = make_client(make_hooks(Halves()), make_config(metrics=False))
    answer = client.get("/metrics")
    assert answer.status_code == 404 and "MODEL_SERVER_METRICS=false" in answer.text


RECORD = """
import sys
sys.path.insert(0, {algo!r})
from sagemaker_byo.serving import metrics
record = metrics.recorder()
print(type(record).__name__)
for status in {statuses!r}:
    record.request_started()
    record.request_finished("/invocations", "POST", status, 0.002)
record.stages_timed(0.0001, 0.0002, 0.00005)
record.answered(5)
record.request_started()  # and the process ends with this request in flight
"""


def record_in_a_process(folder: Path | None, statuses: list[str], **env: str) -> str:
    """Record in a process of its own (prometheus_client picks its mode when it is imported)."""
    environment = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "MODEL_SERVER_METRICS")}
    if folder is not None:
        environment["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    code = RECORD.format(algo=str(ALGO), statuses=statuses)
    done = subprocess.run([sys.executable, "-c", code], env={**environment, **env}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_counts_of_several_processes_add_up_and_outlive_them(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    assert record_in_a_process(folder, ["200", "200", "400"]) == "Recorder"
    assert record_in_a_process(folder, ["200", "500"]) == "Recorder"
    samples = parse(metrics.exposition(folder))
    counted = {dict(labels)["status"]: v for (name, labels), v in samples.items() if name == P + "requests_total"}
    assert counted == {"200": 3, "400": 1, "500": 1}
    assert samples[(P + "rows_answered_total", ())] == 10
    assert samples[(P + "request_duration_seconds_count", (("route", "/invocations"),))] == 5
    # Each process ended with a request in flight: a live gauge, until the process is marked
    # dead, as gunicorn's child_exit does for a worker.
    assert samples[(P + "requests_in_flight", ())] == 2
    for pid in {p.stem.rsplit("_", 1)[1].split("-")[0] for p in folder.glob("gauge_livesum_*.db")}:
        metrics.mark_process_dead(int(pid), folder)
    after = parse(metrics.exposition(folder))
    assert (P + "requests_in_flight", ()) not in after
    assert after[(P + "rows_answered_total", ())] == 10  # the counts stay


def test_recording_turned_off_records_nothing(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    assert record_in_a_process(folder, ["200"], MODEL_SERVER_METRICS="false") == "NoRecorder"
    assert list(folder.iterdir()) == []


HOOK_METRIC = """
import sys
sys.path.insert(0, {algo!r})
from prometheus_client import Counter
from sagemaker_byo.serving import metrics
metrics.recorder().answered(2)
Counter("my_model_calls", "a hook's own metric").inc(3)
"""


def test_a_hooks_own_prometheus_metrics_share_the_folder_without_sharing_a_file(tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    environment.pop("MODEL_SERVER_METRICS", None)
    done = subprocess.run([sys.executable, "-c", HOOK_METRIC.format(algo=str(ALGO))], env=environment,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    samples = parse(metrics.exposition(folder))
    assert samples[("my_model_calls_total", ())] == 3
    assert samples[(P + "rows_answered_total", ())] == 2
    assert len({p.name for p in folder.glob("counter_*.db")}) == 2  # prometheus_client's file and ours


def test_a_forked_process_writes_files_of_its_own(tmp_path):
    record = metrics.Recorder(tmp_path)
    record.chunked_body()
    pid = os.fork()
    if pid == 0:
        record.chunked_body()
        record.chunked_body()
        os._exit(0)
    os.waitpid(pid, 0)
    assert parse(metrics.exposition(tmp_path))[(P + "chunked_bodies_total", ())] == 3
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
