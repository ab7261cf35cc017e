"""Faults on the real serve stack: a corrupt model, a worker killed under load, SIGTERM under load.

Each test starts its own server (nginx, 2 workers) through the `serve` fixture, drives a load of
a few threads for a few seconds on loopback, and polls with bounded waits.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import pytest
import requests

from procs import alive, child_pid, descendants, gunicorn_workers, refuses_connections, worker_boots, worker_pids
from support import PAYLOAD, REPO, Server, copy_test_dir, wait_until

INTEGRATION = REPO / "tests" / "integration"
sys.path.insert(0, str(INTEGRATION))  # serve unpickles the slow model as `slow_model.SlowClassifier`
import slow_model  # noqa: E402

PAYLOAD_BODY = PAYLOAD.read_bytes()
THREADS = 4


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer
    error: str = ""
    body: str = ""


class Load:
    """THREADS threads posting `body` back to back (a new connection each) until stopped or `seconds` pass."""

    def __init__(self, server: Server, body: bytes, seconds: float) -> None:
        self.server, self.body = server, body
        self.deadline = time.monotonic() + seconds
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        """Let the load run its time out (cut short by `stop()` or a failure), and wait for it."""
        if exc_type is not None:
            self.stop()
        for thread in self.threads:
            thread.join(timeout=max(0.0, self.deadline - time.monotonic()) + 15)

    def stop(self) -> None:
        self.stopped.set()

    def _run(self) -> None:
        while not self.stopped.is_set() and time.monotonic() < self.deadline:
            started = time.monotonic()
            try:
                response = requests.post(f"{self.server.url}/invocations", data=self.body,
                                         headers={"Content-Type": "text/csv"}, timeout=10)
                outcome = Outcome(started, time.monotonic(), response.status_code, body=response.text)
            except requests.RequestException as error:
                outcome = Outcome(started, time.monotonic(), None, error=repr(error))
                time.sleep(0.01)  # a refused connection fails at once: do not spin
            with self.lock:
                self.outcomes.append(outcome)

    def wait_for(self, count: int, timeout: float = 10) -> None:
        wait_until(lambda: len(self.outcomes) >= count, timeout, what=f"{count} answers under load")


# -- a corrupt model ----------------------------------------------------------------------------

def test_a_corrupt_model_keeps_serve_up_answering_503_with_the_reason_logged(serve, trained_dir: Path,
                                                                             tmp_path: Path):
    base = copy_test_dir(tmp_path / "ml")
    shutil.copy(trained_dir / "model" / "model.json", base / "model" / "model.json")
    (base / "model" / "model.joblib").write_bytes(os.urandom(4096))
    server = serve(base_dir=base, wait_ready=False)

    log = wait_until(lambda: "could not load the model" in (text := server.log()) and text, 15,
                     what="serve to log that the model could not be loaded")
    line = next(line for line in log.splitlines() if "could not load the model" in line)
    assert str(base / "model") in line, line  # where (the folder: test below for the file)
    assert "Error" in line.split(str(base / "model"), 1)[1], line  # and why (the exception's type)

    server.wait_for_ping(503, timeout=15)
    answers = []
    started = time.monotonic()
    while time.monotonic() - started < 3:  # a few seconds of health checks, as SageMaker sends them
        answers.append(server.ping_status())
        time.sleep(0.1)
    assert set(answers) == {503}, answers
    ping = requests.get(f"{server.url}/ping", timeout=2)
    assert ping.headers["Content-Type"].startswith("text/plain") and len(ping.text) < 300, ping.text
    assert "Traceback" not in ping.text and str(base) not in ping.text, ping.text
    assert server.invoke(PAYLOAD_BODY).status_code == 503

    assert server.process.poll() is None, "serve exited"
    assert len(gunicorn_workers(server, 2)) == 2
    assert worker_boots(server) == 2, "gunicorn is restarting workers in a loop"


def test_a_corrupt_model_is_named_in_the_log(serve, tmp_path: Path):
    base = copy_test_dir(tmp_path / "ml")
    (base / "model" / "model.joblib").write_bytes(os.urandom(4096))
    server = serve(base_dir=base, wait_ready=False)
    log = wait_until(lambda: "could not load the model" in (text := server.log()) and text, 15,
                     what="serve to log that the model could not be loaded")
    line = next(line for line in log.splitlines() if "could not load the model" in line)
    assert "model.joblib" in line, line


# -- a worker killed under load ---------------------------------------------------------------

def test_a_worker_killed_under_load_fails_at_most_the_requests_in_flight(serve):
    server = serve()
    before = server.invoke(PAYLOAD_BODY)  # the answer every request must get (test_serve checks its labels)
    assert before.status_code == 200 and len(before.text.splitlines()) == len(PAYLOAD_BODY.splitlines())
    expected = before.text
    workers = gunicorn_workers(server, 2)
    victim = min(workers)

    with Load(server, PAYLOAD_BODY, seconds=5) as load:
        load.wait_for(50)
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced = wait_until(lambda: len(pids := worker_pids(server)) == 2 and victim not in pids and pids, 10,
                              what="gunicorn to replace the killed worker")
        replaced_at = time.monotonic()
    outcomes = load.outcomes
    failed = [o for o in outcomes if o.status != 200]
    in_flight = [o for o in outcomes if o.started <= killed_at <= o.ended]
    assert len(failed) <= len(in_flight) <= THREADS, (failed, len(in_flight))
    for outcome in failed:
        assert outcome.started <= killed_at <= outcome.ended, outcome  # only requests already sent
        if outcome.status is not None:  # nginx tells the client what happened, in the documented words
            assert outcome.status == 502 and "lost the worker" in outcome.body, outcome
        else:  # the worker died after its answer had begun: nginx can only cut the connection
            assert "Connection broken" in outcome.error or "RemoteDisconnected" in outcome.error, outcome
    assert all(o.body == expected for o in outcomes if o.status == 200)

    end = max(o.ended for o in outcomes)
    last_second = [o for o in outcomes if o.started >= end - 1]
    assert end - replaced_at >= 1, "the load ended too soon after the replacement to judge the last second"
    assert last_second and all(o.status == 200 for o in last_second), last_second
    assert len(replaced - workers) == 1
    assert server.process.poll() is None


# -- SIGTERM under load -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory) -> Path:
    """A /opt/ml whose model sleeps for the seconds in the first cell of a request."""
    base = copy_test_dir(tmp_path_factory.mktemp("slow") / "ml")
    joblib.dump(slow_model.SlowClassifier(), base / "model" / "model.joblib")
    return base


def test_sigterm_under_load_finishes_in_flight_requests_refuses_new_ones_and_exits_0(serve,
                                                                                      slow_model_dir: Path):
    server = serve(base_dir=slow_model_dir, env={"PYTHONPATH": str(INTEGRATION)})
    gunicorn_workers(server, 2)
    processes = descendants(server.process.pid)
    nginx = child_pid(server, "nginx")
    with Load(server, b"0.05,0,0,0\n", seconds=8) as load:  # 50 ms each: always some in flight
        load.wait_for(10)
        slow = threading.Thread(target=lambda: load.outcomes.append(
            Outcome(0, 0, (r := server.invoke("1.5,0,0,0")).status_code, body=r.text)), daemon=True)
        slow.start()
        wait_until(lambda: "slow_model: sleeping 1.5s" in server.log(), 5, what="the slow request to reach the model")
        signalled_at = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses_connections(server.port), 2, what="the port to refuse new connections")
        refusing_at = time.monotonic()
        code = server.process.wait(timeout=30)
        exited_at = time.monotonic()
        slow.join(timeout=5)
        wait_until(lambda: any(o.started >= exited_at for o in load.outcomes), 5, what="a request after the exit")
        load.stop()
    outcomes = load.outcomes

    assert code == 0, server.log()[-3000:]
    assert exited_at - signalled_at < 10, f"serve took {exited_at - signalled_at:.1f}s to stop"
    assert any(o.status == 200 and o.body == f"{slow_model.LABEL}\n" and o.started == 0 for o in outcomes), \
        "the slow request in flight at SIGTERM did not complete"
    answered = [o for o in outcomes if o.status is not None]
    assert answered and all(o.status == 200 for o in answered), [o for o in answered if o.status != 200]
    refused = [o for o in outcomes if o.status is None]
    for outcome in refused:  # only connections that were never accepted, and only after SIGTERM
        assert "Connection refused" in outcome.error or "ConnectionRefused" in outcome.error, outcome
        assert outcome.ended >= signalled_at, outcome
    assert any(o.started >= refusing_at for o in refused), "no request was tried after the port closed"
    assert len(answered) >= 10, f"only {len(answered)} requests were answered: not much of a load"
    assert not alive(nginx)
    wait_until(lambda: not any(alive(pid) for pid in processes), 3, what="serve's children to be gone")


# -- serve killed outright ----------------------------------------------------------------------

def test_sigkill_of_serve_takes_nginx_and_gunicorn_with_it(serve):
    server = serve()
    gunicorn_workers(server, 2)
    processes = descendants(server.process.pid)
    assert len(processes) >= 5, processes  # nginx master and worker(s), gunicorn master and 2 workers
    server.process.kill()
    server.process.wait(timeout=5)
    wait_until(lambda: not any(alive(pid) for pid in processes), 10, what="nginx and gunicorn to end with serve")
    wait_until(lambda: refuses_connections(server.port), 5, what="the port to be free")


def test_sigkill_of_serve_during_a_long_request_leaves_nothing_running(serve, slow_model_dir: Path):
    server = serve(base_dir=slow_model_dir, env={"PYTHONPATH": str(INTEGRATION)})
    gunicorn_workers(server, 2)
    processes = descendants(server.process.pid)
    slow = threading.Thread(target=lambda: _ignore_errors(server.invoke, "20,0,0,0"), daemon=True)
    slow.start()
    wait_until(lambda: "slow_model: sleeping 20" in server.log(), 5, what="the slow request to reach the model")
    server.process.kill()
    server.process.wait(timeout=5)
    # The worker busy in its 20 s request is killed too, not left to finish it as an orphan.
    wait_until(lambda: not any(alive(pid) for pid in processes), 10, what="every process of serve to end")
    slow.join(timeout=5)


def _ignore_errors(call, *args):
    try:
        call(*args)
    except requests.RequestException:
        pass
