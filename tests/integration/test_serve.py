"""The real `algo/serve` (nginx in front of gunicorn) on loopback, called as SageMaker hosting calls it.

Stateless request/response behaviour shares one server per module (`shared_server`); anything
that stops, kills or reconfigures a server starts its own through the `serve` fixture.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests

from procs import alive, child_pid, descendants, gunicorn_workers, refuses_connections, worker_pids
from support import PAYLOAD, Server, copy_test_dir, have_nginx, plumbing_algo, require, wait_until

HERE = Path(__file__).resolve().parent
# serve unpickles the slow model as `slow_model.SlowClassifier` (PYTHONPATH=HERE), so pickle it
# under that name too, not as `integration.slow_model`.
sys.path.insert(0, str(HERE))
import slow_model  # noqa: E402

MB = 1024 * 1024
ROW = b"5.1,3.5,1.4,0.2\n"  # 16 bytes: bodies of an exact size are whole rows
PAYLOAD_TEXT = PAYLOAD.read_text()


# -- helpers ----------------------------------------------------------------------------------

def rows_of(csv_text: str) -> np.ndarray:
    return np.array([[float(cell) for cell in line.split(",")] for line in csv_text.splitlines()])


def many_rows(count: int) -> str:
    """`count` payload rows in a scrambled order, so input order shows in the labels."""
    payload = PAYLOAD_TEXT.splitlines()
    return "".join(payload[(i * 7) % len(payload)] + "\n" for i in range(count))


def assert_short_message(response: requests.Response, status: int) -> None:
    """An error answer: the status, one short line of text, nothing of a traceback."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert text.strip(), "the error has no message"
    assert len(text) < 300 and text.count("\n") <= 1, text
    assert "Traceback" not in text and 'File "' not in text, text


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared_server(trained_dir: Path):
    """One server (nginx, 2 workers) for the tests that only send requests."""
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    server = Server(trained_dir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def model(trained_dir: Path):
    return joblib.load(trained_dir / "model" / "model.joblib")


@pytest.fixture(scope="module")
def slow_model_dir(tmp_path_factory) -> Path:
    """A /opt/ml whose model sleeps for the seconds in the first cell of a request."""
    base = copy_test_dir(tmp_path_factory.mktemp("slow") / "ml")
    assert slow_model.SlowClassifier.__module__ == "slow_model"
    joblib.dump(slow_model.SlowClassifier(), base / "model" / "model.joblib")
    return base


@pytest.fixture
def serve_slow(serve, slow_model_dir: Path):
    def start(**env: str) -> Server:
        return serve(base_dir=slow_model_dir, env={"PYTHONPATH": str(HERE), **env})
    return start


# -- health and predictions -------------------------------------------------------------------

def test_ping_answers_200_once_the_model_is_loaded(shared_server: Server):
    response = requests.get(f"{shared_server.url}/ping", timeout=2)
    assert response.status_code == 200
    assert "model loaded from" in shared_server.log()


def test_a_relative_base_dir_is_resolved_against_the_callers_working_directory(trained_dir: Path, tmp_path):
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    shutil.copytree(trained_dir, tmp_path / "here" / "ml")
    server = Server(tmp_path / "here" / "ml", env={"SAGEMAKER_BASE_DIR": "ml"}, cwd=tmp_path / "here")
    try:
        server.start()  # /ping answers 200: the model was found under the caller's ml/
        assert server.invoke("5.1,3.5,1.4,0.2\n").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("content_type", ["text/csv", "text/csv; charset=utf-8", "Text/CSV; charset=UTF-8"])
@pytest.mark.parametrize("rows", [1, 10, 500], ids=lambda n: f"{n}rows")
def test_csv_rows_get_the_models_labels_one_per_line_in_input_order(shared_server: Server, model,
                                                                     content_type: str, rows: int):
    body = many_rows(rows)  # 500 rows pass the pandas parser, fewer the small-body path
    response = shared_server.invoke(body, content_type)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv"
    expected = [str(label) for label in model.predict(rows_of(body))]
    assert response.text.splitlines() == expected
    assert response.text.endswith("\n")


def test_execution_parameters_describe_the_server_as_json(shared_server: Server):
    response = requests.get(f"{shared_server.url}/execution-parameters", timeout=2)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.text) == {
        "MaxConcurrentTransforms": 2, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6,
    }


# -- bad requests -----------------------------------------------------------------------------

BAD_BODIES = {
    "three_features": (b"5.1,3.5,1.4\n", "has 3 values; the model takes 4"),
    "five_features_in_many_rows": (
        "".join(f"{line},9\n" for line in many_rows(300).splitlines()).encode(), "has 5 values; the model takes 4"),
    "ragged_rows": (b"5.1,3.5,1.4,0.2\n5.7,4.4,1.5\n", "row 2 has 3 values"),
    "word": (b"5.1,abc,1.4,0.2\n", "'abc' is not a number"),
    "word_in_many_rows": (
        (many_rows(299) + "5.1,abc,1.4,0.2\n" + many_rows(100)).encode(), "row 300, column 2: 'abc'"),
    "infinite": (b"1e999,3.5,1.4,0.2\n", "infinite"),  # trained_dir's decision tree refuses infinities
    "not_utf8": (b"\xff\xfe5.1,3.5,1.4,0.2\n", "not valid utf-8"),
    "empty": (b"", "empty"),
    "blank_lines": (b"\n\n", "only blank lines"),
}


@pytest.mark.parametrize(("body", "says"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_csv_gets_400_with_a_short_message(shared_server: Server, body: bytes, says: str):
    response = shared_server.invoke(body)
    assert_short_message(response, 400)
    assert says in response.text


@pytest.mark.parametrize("content_type", ["application/xml", "application/octet-stream", "text/plain"])
def test_unsupported_content_type_returns_415(shared_server: Server, content_type: str):
    response = shared_server.invoke(b"5.1,3.5,1.4,0.2\n", content_type)
    assert_short_message(response, 415)
    assert content_type in response.text and "text/csv" in response.text


def test_unacceptable_accept_returns_406(shared_server: Server):
    response = shared_server.invoke(PAYLOAD_TEXT, Accept="application/xml")
    assert_short_message(response, 406)
    assert "text/csv" in response.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/"), ("GET", "/models"), ("GET", "/invocations/x"), ("POST", "/invocations/x"),
])
def test_unknown_routes_return_404(shared_server: Server, method: str, path: str):
    response = requests.request(method, f"{shared_server.url}{path}", timeout=2)
    assert_short_message(response, 404)
    assert "/ping, /invocations and /execution-parameters" in response.text


def test_body_over_6_mb_gets_413_from_nginx_naming_the_limit(shared_server: Server):
    response = shared_server.invoke(ROW * (6 * MB // len(ROW) + 1))
    assert_short_message(response, 413)
    assert "6 MB" in response.text
    assert "client intended to send too large body" in shared_server.log()  # nginx refused it


def test_responses_do_not_reveal_the_nginx_version(shared_server: Server):
    responses = [
        requests.get(f"{shared_server.url}/ping", timeout=2),
        shared_server.invoke(PAYLOAD_TEXT),
        shared_server.invoke(b"oops"),
        requests.get(f"{shared_server.url}/models", timeout=2),
        shared_server.invoke(ROW * (6 * MB // len(ROW) + 1)),
    ]
    for response in responses:
        assert not re.search(r"\d", response.headers.get("Server", "")), response.headers["Server"]
        assert "nginx/" not in response.text


def test_bad_requests_never_kill_a_worker(shared_server: Server, model):
    workers = gunicorn_workers(shared_server, 2)
    for body, _ in BAD_BODIES.values():
        assert shared_server.invoke(body).status_code == 400
    assert shared_server.invoke(PAYLOAD_TEXT, "application/xml").status_code == 415
    assert shared_server.invoke(ROW * (6 * MB // len(ROW) + 1)).status_code == 413

    response = shared_server.invoke(PAYLOAD_TEXT)
    assert response.status_code == 200
    assert response.text.splitlines() == [str(label) for label in model.predict(rows_of(PAYLOAD_TEXT))]
    assert worker_pids(shared_server) == workers
    assert "Traceback" not in shared_server.log()


# -- configuration ----------------------------------------------------------------------------

def test_max_payload_in_mb_lowers_the_body_limit(serve):
    server = serve(env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    at_limit = server.invoke(ROW * (MB // len(ROW)))
    assert at_limit.status_code == 200, at_limit.text
    assert len(at_limit.text.splitlines()) == MB // len(ROW)

    over = server.invoke(ROW * (MB // len(ROW) + 1))
    assert_short_message(over, 413)
    assert "limit of 1 MB" in over.text
    parameters = requests.get(f"{server.url}/execution-parameters", timeout=2).json()
    assert parameters["MaxPayloadInMB"] == 1


def test_model_server_workers_sets_the_number_of_worker_processes(serve):
    server = serve(env={"MODEL_SERVER_WORKERS": "3"})
    assert len(gunicorn_workers(server, 3)) == 3
    parameters = requests.get(f"{server.url}/execution-parameters", timeout=2).json()
    assert parameters["MaxConcurrentTransforms"] == 3


def test_without_nginx_gunicorn_serves_the_port_itself(serve, model):
    server = serve(nginx=False)
    response = server.invoke(PAYLOAD_TEXT)
    assert response.status_code == 200, response.text
    assert response.text.splitlines() == [str(label) for label in model.predict(rows_of(PAYLOAD_TEXT))]
    assert "started nginx" not in server.log()


def test_missing_model_keeps_serve_up_with_ping_503_and_the_reason_logged(serve, tmp_path: Path):
    server = serve(base_dir=copy_test_dir(tmp_path / "ml"), wait_ready=False)  # model/ is empty
    server.wait_for_ping(503)
    ping = requests.get(f"{server.url}/ping", timeout=2)
    assert_short_message(ping, 503)
    assert "model.joblib" not in ping.text  # paths stay in the log
    assert_short_message(server.invoke(PAYLOAD_TEXT), 503)
    log = server.log()
    assert "could not load the model" in log and "model.joblib" in log
    assert server.process.poll() is None


# -- stopping ---------------------------------------------------------------------------------

def test_sigterm_on_an_idle_server_exits_0_within_seconds(serve):
    server = serve()
    gunicorn_workers(server, 2)
    processes = descendants(server.process.pid)
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=5) == 0, server.log()
    assert time.monotonic() - started < 5
    assert not any(alive(pid) for pid in processes)


def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections(serve_slow):
    server = serve_slow()
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(server.invoke, "3,0,0,0")
        wait_until(lambda: "slow_model: sleeping 3s" in server.log(), 5, what="the model to start predicting")
        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses_connections(server.port), 2, what="the port to refuse new connections")
        assert not in_flight.done(), "the slow request ended before the port closed"
        response = in_flight.result(timeout=30)
    assert response.status_code == 200, response.text
    assert response.text == f"{slow_model.LABEL}\n"
    assert server.process.wait(timeout=10) == 0, server.log()


def test_a_request_still_running_when_the_shutdown_grace_ends_is_cut_off_and_logged(serve_slow):
    """SageMaker kills the container 30 s after SIGTERM; serve gives in-flight requests 25 s."""
    server = serve_slow(MODEL_SERVER_TIMEOUT="120")
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(lambda: requests.post(f"{server.url}/invocations", data="60,0,0,0",
                                                      headers={"Content-Type": "text/csv"}, timeout=90))
        wait_until(lambda: "slow_model: sleeping 60s" in server.log(), 5, what="the model to start predicting")
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=29) == 0, server.log()  # before SageMaker's SIGKILL at 30 s
        try:
            answer = in_flight.result(timeout=30).status_code
        except requests.RequestException:
            answer = None  # the connection was cut
    assert answer != 200
    assert "grace of 25s is over" in server.log() and "cutting off requests still in flight" in server.log()


def test_a_client_that_never_finishes_its_request_is_dropped_and_others_are_served(serve):
    server = serve(env={"MODEL_SERVER_TIMEOUT": "2"})
    slow_header = socket.create_connection(("127.0.0.1", server.port))
    slow_header.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n")  # headers never end
    slow_body = socket.create_connection(("127.0.0.1", server.port))
    slow_body.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                      b"Content-Length: 100\r\n\r\n5.1,")  # the body never ends
    assert server.invoke(PAYLOAD_TEXT).status_code == 200
    for sock in (slow_header, slow_body):
        sock.settimeout(15)  # nginx drops it after client_header/body_timeout = MODEL_SERVER_TIMEOUT
        try:
            while sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        sock.close()
    assert server.invoke(PAYLOAD_TEXT).status_code == 200


# -- failures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["nginx", "gunicorn"])
def test_serve_exits_nonzero_naming_a_child_that_died(serve, name: str):
    server = serve()
    gunicorn_workers(server, 2)  # so that the workers are among the processes that must go
    processes = descendants(server.process.pid)
    os.kill(child_pid(server, name), signal.SIGKILL)
    assert server.process.wait(timeout=2) != 0
    assert f"{name} exited unexpectedly" in server.log()
    wait_until(lambda: not any(alive(pid) for pid in processes), 3, what="serve's children to be gone")


BROKEN_PREDICTORS = {
    "missing-package": ("import sagemaker_byo_absent_codec  # forgotten in requirements.in\n",
                        "predictor.py cannot be imported: the Python package that provides "
                        "'sagemaker_byo_absent_codec' is not installed in this image"),
    "syntax-error": ("def answer(:\n",
                     "predictor.py cannot be imported: SyntaxError: invalid syntax (predictor.py, line"),
    "raises-at-import": ("raise RuntimeError('the tokenizer file is missing')\n",
                         "predictor.py cannot be imported: RuntimeError: the tokenizer file is missing"),
}


@pytest.mark.parametrize("preload", ["true", "false"], ids=["preload", "no-preload"])
@pytest.mark.parametrize(("source", "says"), BROKEN_PREDICTORS.values(), ids=BROKEN_PREDICTORS.keys())
def test_a_predictor_that_cannot_be_imported_stops_serve_with_one_line_naming_the_error(
        trained_dir: Path, tmp_path: Path, source: str, says: str, preload: str):
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    algo = tmp_path / "algo"
    shutil.copytree(plumbing_algo(), algo)
    predictor = algo / "predictor.py"
    predictor.write_text(predictor.read_text() + source)  # as a fork's last edit
    server = Server(trained_dir, env={"MODEL_SERVER_PRELOAD": preload}, algo=algo)
    try:
        server.start(wait_ready=False)
        assert server.process.wait(timeout=30) != 0
    finally:
        server.stop()
    log = server.log()
    assert says in log, log
    ours = log[log.index(says):log.index("Worker exiting") if preload == "false" else None]
    assert "gunicorn/" not in ours and "importlib" not in ours, ours  # the fork's frames only
    # Without preload, every worker fails at once and gunicorn's master may print its own
    # traceback as it halts (HaltServer raised again while stopping): gunicorn's, after ours.
    assert "ERROR serve: gunicorn exited" in log, log  # code 4, or 1 when its halt raised again


def test_a_killed_worker_is_replaced_and_requests_keep_succeeding(serve, model):
    server = serve()
    expected = [str(label) for label in model.predict(rows_of(PAYLOAD_TEXT))]
    workers = gunicorn_workers(server, 2)
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    for _ in range(4):  # the other worker answers while gunicorn boots a replacement
        response = server.invoke(PAYLOAD_TEXT)
        assert response.status_code == 200, response.text
        assert response.text.splitlines() == expected
    replaced = wait_until(lambda: len(pids := worker_pids(server)) == 2 and victim not in pids and pids, 10,
                          what="gunicorn to replace the killed worker")
    assert len(replaced - workers) == 1
    for _ in range(4):
        assert server.invoke(PAYLOAD_TEXT).text.splitlines() == expected
    assert server.process.poll() is None


def test_request_slower_than_model_server_timeout_gets_504_naming_it(serve_slow):
    server = serve_slow(MODEL_SERVER_TIMEOUT="2")
    started = time.monotonic()
    response = server.invoke("3,0,0,0")
    assert 1.5 < time.monotonic() - started < 3  # nginx gave up before the model answered
    assert_short_message(response, 504)
    assert "MODEL_SERVER_TIMEOUT=2" in response.text

    for _ in range(3):  # the other worker answers; the slow one is not needed
        fast = server.invoke("0,0,0,0")
        assert fast.status_code == 200, fast.text
        assert fast.text == f"{slow_model.LABEL}\n"
    assert server.process.poll() is None


def test_ping_answers_within_sagemakers_2_seconds_while_every_worker_is_busy(serve_slow):
    server = serve_slow(MODEL_SERVER_WORKERS="2")
    busy = [threading.Thread(target=server.invoke, args=(b"4,0,0,0\n",)) for _ in range(2)]
    for thread in busy:
        thread.start()
    wait_until(lambda: server.log().count("slow_model: sleeping 4s") == 2, 10, what="both workers to be busy")
    response = requests.get(f"{server.url}/ping", timeout=2)  # SageMaker gives a ping 2 s
    assert response.status_code == 200
    for thread in busy:
        thread.join(30)
