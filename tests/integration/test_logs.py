"""The real `algo/serve`'s log: the inference id SageMaker sends is in every line a request causes
(nginx's access line of a 200, the app's warning of a 400, the traceback of a 500, a hook's own
line), and SAGEMAKER_CONTAINER_LOG_FORMAT=json makes every line one JSON object.
"""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import pytest

from support import Server, have_nginx, require, wait_until

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serve unpickles `scripted_model.ScriptedModel`; pickle it under that name
import scripted_model  # noqa: E402

ID = "X-Amzn-SageMaker-Inference-Id"
OK_BODY, BAD_BODY = "1,2,3,4\n", "1,2\n"
FAIL_BODY = f"{scripted_model.FAIL},0,0,0\n"
SLEEP_BODY = f"{scripted_model.SLEEP + 0.1},0,0,0\n"


@pytest.fixture(scope="module")
def scripted_dir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("logs") / "ml"
    (base / "model").mkdir(parents=True)
    joblib.dump(scripted_model.ScriptedModel(), base / "model" / "model.joblib")
    return base


@pytest.fixture
def start(scripted_dir: Path):
    started: list[Server] = []

    def run(**env: str) -> Server:
        require(have_nginx(), "nginx is not installed (apt-get install nginx)")
        server = Server(scripted_dir, env={"PYTHONPATH": str(HERE), **env})
        started.append(server)
        return server.start()

    yield run
    for server in started:
        server.stop()


def lines_with(server: Server, text: str) -> list[str]:
    return [line for line in server.log().splitlines() if text in line]


def send_one_of_each(server: Server) -> None:
    """A 200, a 400, a 500 and a 200 whose hook logs a line, each with its own inference id."""
    assert server.invoke(OK_BODY, **{ID: "id-ok-1"}).status_code == 200
    assert server.invoke(BAD_BODY, **{ID: "id-bad-2"}).status_code == 400
    assert server.invoke(FAIL_BODY, **{ID: "id-fail-3"}).status_code == 500
    assert server.invoke(SLEEP_BODY, **{ID: "id-hook-4"}).status_code == 200


# -- text (the default) ---------------------------------------------------------------------------

def test_the_inference_id_is_in_the_log_lines_of_a_200_a_400_a_500_and_a_hooks_own_line(start):
    server = start()
    send_one_of_each(server)
    # Each line is written when its worker gets to it (an access line after its response, the
    # workers in any order): wait for every line asserted below, then assert each.
    wait_until(lambda: all(lines_with(server, f"inference_id={i}") for i in ("id-ok-1", "id-bad-2", "id-fail-3"))
               and "scripted failure" in server.log() and len(lines_with(server, "inference_id=id-hook-4")) >= 2,
               30, what="every request's lines")
    access = lines_with(server, "inference_id=id-ok-1")
    assert len(access) == 1 and '"POST /invocations HTTP/1.1" 200' in access[0], access
    refused = lines_with(server, "inference_id=id-bad-2")
    assert len(refused) == 1 and "WARNING" in refused[0] and "-> 400" in refused[0], refused
    failed = lines_with(server, "inference_id=id-fail-3")
    assert len(failed) == 1 and "ERROR" in failed[0] and "unexpected error" in failed[0], failed
    after = server.log().split(failed[0], 1)[1]
    assert after.lstrip("\n").startswith("Traceback") and "scripted failure" in after  # its traceback follows
    hook = lines_with(server, "inference_id=id-hook-4")
    assert any("scripted_model: sleeping" in line for line in hook), hook  # the hook's line
    assert any('"POST /invocations HTTP/1.1" 200' in line for line in hook), hook  # and the access line


def test_concurrent_requests_keep_their_own_ids(start):
    server = start()
    ids = [f"id-many-{i}" for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: server.invoke(BAD_BODY, **{ID: i}), ids))
    assert {a.status_code for a in answers} == {400}
    def warnings_of(inference_id: str) -> list[str]:
        return [line for line in server.log().splitlines() if line.endswith(f"inference_id={inference_id}")]

    wait_until(lambda: all(warnings_of(i) for i in ids), 10, what="every warning")
    for i in ids:
        assert len(warnings_of(i)) == 1, warnings_of(i)


def test_a_request_without_an_inference_id_gets_one_from_nginx_in_both_lines(start):
    server = start()
    assert server.invoke(BAD_BODY).status_code == 400
    assert server.invoke(OK_BODY).status_code == 200
    wait_until(lambda: lines_with(server, '"POST /invocations HTTP/1.1" 200') and lines_with(server, "-> 400"), 30,
               what="the warning and the access line")
    warning = lines_with(server, "-> 400")[0]
    access = lines_with(server, '"POST /invocations HTTP/1.1" 200')[0]
    for line in (warning, access):
        assert re.search(r"inference_id=[0-9a-f]{32}$", line), line
    assert warning.rsplit("=", 1)[1] != access.rsplit("=", 1)[1]


# -- JSON -----------------------------------------------------------------------------------------

def test_json_logs_every_line_parses_and_carries_the_request(start):
    server = start(SAGEMAKER_CONTAINER_LOG_FORMAT="json")
    send_one_of_each(server)
    assert server.invoke(OK_BODY, **{ID: 'quote " and \\ backslash'}).status_code == 200
    server.stop()
    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys(), entry
    by_id = {}
    for entry in entries:
        by_id.setdefault(entry.get("inference_id"), []).append(entry)

    [access] = by_id["id-ok-1"]
    assert access["logger"] == "nginx.access" and access["status"] == 200 and access["route"] == "/invocations"
    assert isinstance(access["duration_s"], (int, float))
    [refused] = by_id["id-bad-2"]
    assert refused["level"] == "WARNING" and refused["status"] == 400 and refused["route"] == "/invocations"
    assert isinstance(refused["duration_s"], float)
    [failed] = by_id["id-fail-3"]
    assert failed["level"] == "ERROR" and failed["status"] == 500 and "scripted failure" in failed["exception"]
    assert {e["logger"] for e in by_id["id-hook-4"]} == {"scripted_model", "nginx.access"}
    assert by_id['quote " and \\ backslash'][0]["status"] == 200
    assert any(e["logger"] == "gunicorn.error" and "Booting worker" in e["message"] for e in entries)
