"""Multi-model endpoints through the real `algo/serve` (nginx, gunicorn, 2 workers) with
SAGEMAKER_MULTI_MODEL=true, driven as SageMaker drives them: load, list, get, invoke in every
content type, unload, reload; 404, 409 and 507; a hostile name; concurrent loads and invokes, a
load racing an invoke, load/unload churn; the list answering while every worker is busy; and an
unload giving the memory back before its 200.

Every invoke is sent several times so both workers answer it: a model loaded through one worker
must be answered by every one, an unloaded one by none.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from sagemaker_byo import contract
from support import Server, have_nginx, require, wait_until

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # serve unpickles fixture_models.WeightedVote and slow_model.SlowClassifier
import fixture_models  # noqa: E402
import slow_model  # noqa: E402

TRIES = 6  # requests per check, so that both workers answer
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [1.0, 9.0, 2.0, 7.0]])
REVIEWS = pd.DataFrame({"review": ["lovely lamp", "awful broken chair", "cosy cheap sofa"]})
GIB = 1024 ** 3


def write_model(folder: Path, model, frame: pd.DataFrame | None = None) -> Path:
    """A model folder as algo/train writes it; with `frame`, model.json holds the measured contract."""
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    if frame is not None:
        description = {"format_version": 2, "input": contract.measure(model, frame).as_json()}
        (folder / "model.json").write_text(json.dumps(description))
    return folder


def numeric_frame() -> pd.DataFrame:
    return pd.DataFrame(fixture_models.numeric_data()[0], columns=[f"c{j}" for j in range(4)])


@pytest.fixture(scope="module")
def models(tmp_path_factory, trained_dir) -> dict[str, tuple[Path, object]]:
    """/opt/ml/models/<name>/model for models of several kinds, as SageMaker lays them out."""
    root = tmp_path_factory.mktemp("mme") / "ml" / "models"
    shutil.copytree(trained_dir / "model", root / "iris" / "model")
    built = {
        "tree": (fixture_models.tree(), numeric_frame()),
        "knn": (fixture_models.knn(), numeric_frame()),
        "text": (fixture_models.text_pipeline(), fixture_models.text_data()[0]),
        "vote": (fixture_models.weighted_vote(), numeric_frame()),
        "measured-knn": (fixture_models.knn(), None),  # no model.json: measured at load
        "slow": (slow_model.SlowClassifier(), None),
    }
    found = {"iris": (root / "iris" / "model", joblib.load(root / "iris" / "model" / "model.joblib"))}
    for name, (model, frame) in built.items():
        found[name] = (write_model(root / name / "model", model, frame), model)
    return found


def start_mme(base_dir: Path, **env: str) -> Server:
    require(have_nginx(), "nginx is not installed (apt-get install nginx)")
    return Server(base_dir, env={"SAGEMAKER_MULTI_MODEL": "true", "PYTHONPATH": str(HERE),
                                 "MODEL_SERVER_WORKERS": "2", **env}).start()


@pytest.fixture(scope="module")
def server(models):
    base = next(iter(models.values()))[0].parents[2]
    server = start_mme(base)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_models_left(request):
    """Each test starts from, and leaves, an endpoint with no model loaded."""
    yield
    if "server" in request.fixturenames:
        server = request.getfixturevalue("server")
        for entry in listed(server):
            requests.delete(f"{server.url}/models/{quote(entry['modelName'], safe='')}", timeout=30)


def load(server: Server, name: str, url: Path | str, **headers) -> requests.Response:
    return requests.post(f"{server.url}/models", json={"model_name": name, "url": str(url)}, timeout=60,
                         headers=headers)


def unload(server: Server, name: str) -> requests.Response:
    return requests.delete(f"{server.url}/models/{quote(name, safe='')}", timeout=60)


def invoke(server: Server, name: str, body, content_type: str = "text/csv", **headers) -> requests.Response:
    headers = {"Content-Type": content_type, "X-Amzn-SageMaker-Target-Model": quote(f"{name}.tar.gz"), **headers}
    return requests.post(f"{server.url}/models/{quote(name, safe='')}/invoke", data=body, headers=headers,
                         timeout=60)


def listed(server: Server, **params) -> list[dict]:
    found, token = [], None
    while True:
        query = {**params, **({"next_page_token": token} if token else {})}
        answer = requests.get(f"{server.url}/models", params=query, timeout=5)
        assert answer.status_code == 200, answer.text
        found += answer.json()["models"]
        token = answer.json().get("nextPageToken")
        if token is None:
            return found


def csv(rows: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:g}" for v in row) for row in rows)


def labels(answer: requests.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return answer.text.split()


# -- the contract ---------------------------------------------------------------------------
def test_ping_is_200_and_the_list_empty_with_no_model(server):
    assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200
    assert requests.get(f"{server.url}/models", timeout=2).json() == {"models": []}


def test_load_list_get_invoke_unload_and_reload(server, models):
    folder, model = models["iris"]
    answer = load(server, "iris", folder)
    assert answer.status_code == 200, answer.text
    assert listed(server) == [{"modelName": "iris", "modelUrl": str(folder)}]
    assert requests.get(f"{server.url}/models/iris", timeout=5).json() == {"modelName": "iris",
                                                                          "modelUrl": str(folder)}
    expected = [str(v) for v in model.predict(ROWS)]
    for _ in range(TRIES):
        assert labels(invoke(server, "iris", csv(ROWS))) == expected
    assert unload(server, "iris").status_code == 200
    for _ in range(TRIES):  # no worker answers it any more
        answer = invoke(server, "iris", csv(ROWS))
        assert answer.status_code == 404 and "'iris' is not loaded" in answer.text
    assert requests.get(f"{server.url}/models/iris", timeout=5).status_code == 404
    assert listed(server) == []
    assert load(server, "iris", folder).status_code == 200
    for _ in range(TRIES):
        assert labels(invoke(server, "iris", csv(ROWS))) == expected


@pytest.mark.parametrize("content_type, body", [
    ("text/csv", csv(ROWS)),
    ("text/csv; charset=utf-8", csv(ROWS)),
    ("application/json", json.dumps({"instances": ROWS.tolist()})),
    ("application/jsonlines", "\n".join(json.dumps(row) for row in ROWS.tolist())),
    ("application/x-npy", None),
])
@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
def test_every_content_type_and_accept_against_models_side_by_side(server, models, content_type, body, accept):
    if body is None:
        buffer = io.BytesIO()
        np.save(buffer, ROWS)
        body = buffer.getvalue()
    for name in ("iris", "tree", "knn", "vote", "measured-knn"):
        assert load(server, name, models[name][0]).status_code == 200
    for name in ("iris", "tree", "knn", "vote", "measured-knn"):
        model = models[name][1]
        expected = [str(v) for v in model.predict(ROWS.astype(np.float32) if name == "tree" else ROWS)]
        for _ in range(3):
            answer = invoke(server, name, body, content_type, Accept=accept)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Content-Type"].startswith(accept)
            if accept == "application/json":
                got = [str(v) for v in answer.json()["predictions"]]
            elif accept == "application/jsonlines":
                got = [str(json.loads(line)) for line in answer.text.splitlines()]
            else:
                got = answer.text.split()
            assert got == expected, name


def test_each_model_keeps_its_own_input_contract(server, models):
    assert load(server, "text", models["text"][0]).status_code == 200
    assert load(server, "tree", models["tree"][0]).status_code == 200
    text = "\n".join(REVIEWS["review"])
    expected = list(models["text"][1].predict(REVIEWS))
    for _ in range(TRIES):
        assert labels(invoke(server, "text", text)) == expected
        assert invoke(server, "tree", text).status_code == 400  # text is no row of four numbers
        assert invoke(server, "text", csv(ROWS)).status_code == 400  # four columns, not one


def test_probabilities_limits_and_negotiation_as_invocations(server, models):
    folder, model = models["iris"]
    assert load(server, "iris", folder).status_code == 200
    for _ in range(TRIES):
        answer = invoke(server, "iris", csv(ROWS), **{"X-Amzn-SageMaker-Custom-Attributes": "output=probabilities"})
        assert answer.status_code == 200, answer.text
        got = np.array([[float(v) for v in line.split(",")] for line in answer.text.splitlines()])
        assert np.allclose(got, model.predict_proba(ROWS), atol=1e-6)
        assert invoke(server, "iris", csv(ROWS), Accept="image/png").status_code == 406
        assert invoke(server, "iris", csv(ROWS), "application/x-unknown").status_code == 415
        assert invoke(server, "iris", "").status_code == 400
        assert invoke(server, "iris", "1,2\n3").status_code == 400
    assert invoke(server, "iris", b"1" * (7 * 1024 * 1024)).status_code == 413


def test_a_second_load_is_a_409_and_keeps_the_first(server, models):
    assert load(server, "iris", models["iris"][0]).status_code == 200
    answer = load(server, "iris", models["tree"][0])
    assert answer.status_code == 409 and "already loaded" in answer.text
    assert listed(server) == [{"modelName": "iris", "modelUrl": str(models["iris"][0])}]


def test_no_model_where_the_url_points_is_a_404_or_400_with_the_reason(server, models, tmp_path):
    assert load(server, "m", tmp_path / "absent").status_code == 404
    tmp_path.joinpath("empty").mkdir()
    answer = load(server, "m", tmp_path / "empty")
    assert answer.status_code == 404 and "no loadable model" in answer.text
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.joblib").write_bytes(b"garbage")
    answer = load(server, "m", tmp_path / "broken")
    assert answer.status_code == 400 and "cannot be loaded" in answer.text
    answer = requests.post(f"{server.url}/models", data="{not json", timeout=5)
    assert answer.status_code == 400
    assert listed(server) == []


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,  # nested past Python's recursion limit
    json.dumps({"model_name": "m", "url": "/" + "a" * 5000}),  # a path name too long for the kernel
    json.dumps({"model_name": "m", "url": "/tmp/nul\u0000byte"}),
    b"\xff\xfe not UTF-8",
])
def test_a_load_request_the_server_cannot_use_is_a_400_not_a_500(server, body):
    answer = requests.post(f"{server.url}/models", data=body, timeout=10)
    assert answer.status_code in (400, 404), answer.text  # 404: no such folder, as the kernel would say
    assert len(answer.text) < 300 and "\n" not in answer.text.rstrip("\n") and "Traceback" not in answer.text


def test_odd_routes_get_a_short_answer_not_a_redirect_or_an_echo(server):
    answer = requests.post(f"{server.url}/models/{quote('a' * 600 + chr(10) + 'forged: line', safe='')}",
                           timeout=5, allow_redirects=False)
    assert answer.status_code == 405 and len(answer.text) < 200 and answer.text.count("\n") == 1, answer.text
    answer = requests.delete(f"{server.url}/models//invoke", timeout=5, allow_redirects=False)
    assert answer.status_code in (404, 405), answer.status_code  # not a 308 to another route
    assert "/ping, /models, /models/<name>, /models/<name>/invoke and /execution-parameters" in requests.get(
        f"{server.url}/nowhere", timeout=5).text


def test_a_burst_of_list_calls_is_answered_every_one(server, models):
    """SageMaker polls the list beside /ping: a burst queues at the list server, never a 502."""
    assert load(server, "iris", models["iris"][0]).status_code == 200
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda _: requests.get(f"{server.url}/models", timeout=10).status_code, range(256)))
    assert statuses == [200] * 256


def test_unknown_models_are_404_naming_the_model(server):
    for _ in range(TRIES):
        answer = invoke(server, "nobody", csv(ROWS))
        assert answer.status_code == 404 and "'nobody'" in answer.text
    assert unload(server, "nobody").status_code == 404
    assert requests.get(f"{server.url}/models/nobody", timeout=5).status_code == 404


@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b", "new\nline", "x" * 2000, "<script>", ".", ".."])
def test_a_hostile_name_is_refused_and_never_echoed_whole(server, models, name):
    answer = load(server, name, models["iris"][0])
    if name == "<script>":  # printable and without '/': a name like any other
        assert answer.status_code == 200
        assert labels(invoke(server, name, csv(ROWS)))
        assert listed(server)[0]["modelName"] == name
        return
    assert answer.status_code == 400, answer.text
    assert len(answer.text) < 300 and "Traceback" not in answer.text
    for call in (lambda: invoke(server, name, csv(ROWS)), lambda: unload(server, name),
                 lambda: requests.get(f"{server.url}/models/{quote(name, safe='')}", timeout=5)):
        answer = call()
        assert answer.status_code in (400, 404, 405), answer.text  # nginx resolves /models/./invoke
        assert len(answer.text) < 300 and "Traceback" not in answer.text
    assert listed(server) == []


def test_a_unicode_name_round_trips(server, models):
    name = "modèle-ünï.tar.gz"
    assert load(server, name, models["iris"][0]).status_code == 200
    assert listed(server) == [{"modelName": name, "modelUrl": str(models["iris"][0])}]
    assert requests.get(f"{server.url}/models/{quote(name)}", timeout=5).json()["modelName"] == name
    assert labels(invoke(server, name, csv(ROWS)))
    assert unload(server, name).status_code == 200


def test_the_list_pages_with_next_page_token_and_limit(server, models):
    names = [f"m{i:02d}" for i in range(12)]
    with ThreadPoolExecutor(4) as pool:
        assert all(a.status_code == 200 for a in pool.map(lambda n: load(server, n, models["tree"][0]), names))
    first = requests.get(f"{server.url}/models", params={"limit": 5}, timeout=5).json()
    assert [m["modelName"] for m in first["models"]] == names[:5] and "nextPageToken" in first
    assert [m["modelName"] for m in listed(server, limit=5)] == names
    assert requests.get(f"{server.url}/models", params={"limit": "x"}, timeout=5).status_code == 400


def test_the_list_answers_at_once_while_every_worker_is_busy(server, models):
    assert load(server, "slow", models["slow"][0]).status_code == 200
    assert load(server, "iris", models["iris"][0]).status_code == 200
    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(invoke, server, "slow", "3,0,0,0") for _ in range(2)]
        wait_until(lambda: server.log().count("slow_model: sleeping 3s") >= 2, 20, what="both workers busy")
        started = time.monotonic()
        for _ in range(10):
            assert len(listed(server)) == 2
            assert requests.get(f"{server.url}/models/iris", timeout=2).status_code == 200
            assert requests.get(f"{server.url}/ping", timeout=2).status_code == 200
        took = time.monotonic() - started
        assert all(f.result().status_code == 200 for f in busy)
    assert took < 1.0, f"30 list, get and ping calls took {took:.2f}s while the workers were busy"


# -- concurrency and churn -------------------------------------------------------------------
def test_concurrent_loads_of_different_models_and_invokes_of_each(server, models):
    kinds = ["iris", "tree", "knn", "vote"]
    names = [f"{kind}-{i}" for kind in kinds for i in range(4)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: load(server, n, models[n.split("-")[0]][0]), names))
        assert [a.status_code for a in answers] == [200] * len(names), [a.text for a in answers if a.status_code != 200]
        invoked = list(pool.map(lambda n: invoke(server, n, csv(ROWS)), names * 3))
    assert {a.status_code for a in invoked} == {200}
    assert sorted(m["modelName"] for m in listed(server)) == sorted(names)


def test_concurrent_loads_of_one_name_have_one_winner(server, models):
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: load(server, "same", models["knn"][0]), range(6)))
    assert sorted(a.status_code for a in answers) == [200] + [409] * 5


def test_a_load_racing_an_invoke_of_the_same_model_is_never_a_500(server, models):
    for round in range(5):
        with ThreadPoolExecutor(4) as pool:
            loading = pool.submit(load, server, f"race-{round}", models["measured-knn"][0])
            invokes = [pool.submit(invoke, server, f"race-{round}", csv(ROWS)) for _ in range(6)]
            assert loading.result().status_code == 200
            statuses = [f.result().status_code for f in invokes]
        assert set(statuses) <= {200, 404}, statuses
        assert labels(invoke(server, f"race-{round}", csv(ROWS)))


def test_churn_as_with_model_caching_disabled(server, models):
    """Load, invoke, unload, for several models at once: no 500, no deadlock, nothing left over."""
    errors: list[str] = []

    def cycle(name: str) -> None:
        for _ in range(8):
            for answer in (load(server, name, models["tree"][0]), invoke(server, name, csv(ROWS)),
                           invoke(server, name, csv(ROWS)), unload(server, name)):
                if answer.status_code != 200:
                    errors.append(f"{answer.request.method} {answer.status_code} {answer.text}")

    threads = [threading.Thread(target=cycle, args=(f"churn-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "churn did not finish: a deadlock?"
    assert errors == []
    assert listed(server) == []
    assert " 500" not in server.log()


# -- memory -----------------------------------------------------------------------------------
def worker_pids(server: Server) -> list[int]:
    """gunicorn's workers: the children of the master, the child of serve called gunicorn."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    masters = [pid for pid in children.get(server.process.pid, [])
               if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
    return [pid for master in masters for pid in children.get(master, [])]


def rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def test_an_unload_gives_every_workers_memory_back_before_its_200(server, models, tmp_path):
    big = fixture_models.tree()
    big.padding_ = np.random.default_rng(0).random(8_000_000)  # 64 MB the model carries
    folder = write_model(tmp_path / "big" / "model", big, numeric_frame())
    pids = worker_pids(server)
    assert len(pids) == 2
    before = {pid: rss([pid]) for pid in pids}
    assert load(server, "big", folder).status_code == 200

    def every_worker_holds_a_copy() -> bool:
        # Pairs of concurrent invokes, until each worker has served one and loaded its copy: the
        # kernel hands a sequence of requests to whichever worker wakes first, often the same one.
        with ThreadPoolExecutor(2) as pool:
            assert all(labels(a) for a in pool.map(lambda _: invoke(server, "big", csv(ROWS)), range(2)))
        return all(rss([pid]) - before[pid] > 50e6 for pid in pids)

    wait_until(every_worker_holds_a_copy, timeout=60, what="both workers to hold a copy")
    before = sum(before.values())
    assert unload(server, "big").status_code == 200
    after = rss(pids)  # measured right after the 200: no waiting
    assert after - before < 20e6, f"{(after - before) / 1e6:.0f} MB not given back"


def test_a_load_that_does_not_fit_is_a_507_until_memory_is_freed(models, tmp_path):
    """A fake cgroup (the files resources.py reads) whose usage the test sets: 507, then, once
    usage falls as it does when SageMaker unloads other models, the same load succeeds."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(str(4 * GIB))
    (cgroup / "memory.current").write_text(str(int(3.9 * GIB)))
    (cgroup / "memory.stat").write_text("inactive_file 0\n")
    (tmp_path / "self-cgroup").write_text("0::/\n")
    base = models["iris"][0].parents[2]
    server = start_mme(base, SAGEMAKER_CGROUP_ROOT=str(cgroup),
                       SAGEMAKER_PROC_SELF_CGROUP=str(tmp_path / "self-cgroup"))
    try:
        answer = load(server, "iris", models["iris"][0])
        assert answer.status_code == 507 and "not enough memory" in answer.text, answer.text
        assert listed(server) == []
        assert invoke(server, "iris", csv(ROWS)).status_code == 404
        (cgroup / "memory.current").write_text(str(GIB))
        assert load(server, "iris", models["iris"][0]).status_code == 200
        assert labels(invoke(server, "iris", csv(ROWS)))
    finally:
        server.stop()
