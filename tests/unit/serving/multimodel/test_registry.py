"""The multi-model registry (registry.py) and the /models routes (multimodel.py) in-process: names,
loads and their conflicts, pagination, the memory check against a fake cgroup, which process holds
what, and one truth across processes that change the registry at once."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pytest

from sagemaker_byo import resources, settings
from sagemaker_byo.errors import BadRequest, Conflict, InsufficientStorage, NotFound
from sagemaker_byo.serving.app import create_app
from sagemaker_byo.serving.multimodel import registry as registries
from sagemaker_byo.serving.multimodel.registry import Registry
from sagemaker_byo.serving.multimodel.routes import WorkerModels
from sagemaker_byo.serving.pipeline import LoadedModel

GIB = 1024 ** 3


def fake_cgroup(tmp_path: Path, limit: int, current: int, inactive_file: int = 0) -> dict[str, str]:
    """The environment resources.py reads, pointing at a cgroup v2 with these figures."""
    root = tmp_path / "cgroup"
    root.mkdir(exist_ok=True)
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{current}\n")
    (root / "memory.stat").write_text(f"anon {current}\ninactive_file {inactive_file}\n")
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/\n")
    return {resources.CGROUP_ROOT: str(root), resources.PROC_SELF_CGROUP: str(proc)}


@pytest.fixture
def registry(tmp_path) -> Registry:
    return Registry(tmp_path / "registry")


@pytest.fixture
def roomy(tmp_path) -> dict[str, str]:
    return fake_cgroup(tmp_path, limit=8 * GIB, current=GIB)


def loaded(registry: Registry, name: str, env: dict[str, str], url: str = "/models/x") -> registries.Entry:
    return registry.finish_load(registry.begin_load(name, url, need=1000, env=env), memory=1000)


@pytest.mark.parametrize("name", ["a", "model-1.tar.gz", "ünïcode", "x" * registries.MAX_NAME, "...", ".a", "a b"])
def test_names_sagemaker_may_choose_are_kept(name):
    assert registries.check_name(name) == name


@pytest.mark.parametrize("name", ["", None, 7, "a/b", "../../etc/passwd", "new\nline", "nul\x00", "\ud800",
                                  "x" * (registries.MAX_NAME + 1),
                                  ".", ".."])  # a URL path resolves these: /models/<name> would never reach it
def test_hostile_names_are_refused_with_a_400(name):
    with pytest.raises(BadRequest):
        registries.check_name(name)


def test_no_path_is_built_from_a_name(registry, roomy):
    loaded(registry, "../../evil", roomy)
    assert sorted(p.name for p in registry.root.iterdir()) == ["registry.json", "registry.lock", "workers"]


def test_a_load_is_invisible_until_ready_and_a_second_load_is_a_409(registry, roomy):
    entry = registry.begin_load("m", "/models/m", need=10, env=roomy)
    assert registry.page() == {"models": []}
    with pytest.raises(NotFound):
        registry.ready("m")
    with pytest.raises(Conflict, match="loading"):
        registry.begin_load("m", "/models/m", need=10, env=roomy)
    registry.finish_load(entry, memory=10)
    assert registry.page() == {"models": [{"modelName": "m", "modelUrl": "/models/m"}]}
    assert registry.ready("m").listed() == {"modelName": "m", "modelUrl": "/models/m"}
    with pytest.raises(Conflict, match="loaded"):
        registry.begin_load("m", "/models/m", need=10, env=roomy)


def test_an_aborted_load_leaves_nothing(registry, roomy):
    registry.abort_load(registry.begin_load("m", "/models/m", need=10, env=roomy))
    assert registry.snapshot() == {}
    loaded(registry, "m", roomy)  # and loads again


def test_remove_unlists_and_a_reload_is_a_new_generation(registry, roomy):
    first = loaded(registry, "m", roomy)
    assert registry.remove("m").generation == first.generation
    with pytest.raises(NotFound):
        registry.remove("m")
    assert loaded(registry, "m", roomy).generation != first.generation


def test_a_load_whose_worker_died_is_forgotten(registry, roomy):
    process = multiprocessing.get_context("fork").Process(
        target=lambda: registry.begin_load("m", "/models/m", need=10, env=roomy))
    process.start()
    process.join()
    assert registry.get("m", fresh=True).state == registries.LOADING
    loaded(registry, "m", roomy)  # no 409: the dead worker's reservation is dropped


def test_pages_follow_the_token_and_the_last_has_none(registry, roomy):
    names = [f"model-{i:03d}" for i in range(25)]
    for name in reversed(names):
        loaded(registry, name, roomy)
    seen, token = [], None
    while True:
        page = registry.page(token, "10")
        seen += [m["modelName"] for m in page["models"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert seen == names
    assert len(registry.page()["models"]) == 25  # default page of 100


def test_a_page_token_survives_churn_before_it(registry, roomy):
    for name in "abcdef":
        loaded(registry, name, roomy)
    page = registry.page(None, "3")
    registry.remove("a")
    assert [m["modelName"] for m in registry.page(page["nextPageToken"], "3")["models"]] == ["d", "e", "f"]


@pytest.mark.parametrize("limit", ["0", "-1", "ten", "1.5", "\u00b2", "\u0663"])  # superscript 2, Arabic 3
def test_a_bad_limit_is_a_400(registry, limit):
    with pytest.raises(BadRequest):
        registry.page(None, limit)


@pytest.mark.parametrize("token", ["!!!not base64", "!!!!", "YQ!!", "YQ=="])
def test_a_token_this_server_did_not_give_is_a_400(registry, token):
    with pytest.raises(BadRequest):
        registry.page(token, None)


def test_model_size_counts_regular_files_and_stops_past_its_cap(tmp_path):
    (tmp_path / "model.joblib").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part").write_bytes(b"y" * 500)
    os.mkfifo(tmp_path / "pipe")  # never read: a FIFO would block whoever opens it
    (tmp_path / "link").symlink_to(tmp_path / "model.joblib")
    assert registries.model_size(tmp_path) == 1500
    assert 1000 <= registries.model_size(tmp_path, stop_above=999) <= 1500


def test_the_list_server_takes_many_connections_at_once(registry, roomy, tmp_path):
    """nginx opens a connection per list call: a burst must queue, not be refused (a 502)."""
    loaded(registry, "m", roomy)
    server = registries.ListServer(registry, tmp_path / "list.sock").start()
    try:
        def get(_) -> bytes:
            with socket.socket(socket.AF_UNIX) as client:
                client.setblocking(False)  # as nginx connects: a full backlog is EAGAIN at once
                client.connect(str(tmp_path / "list.sock"))
                client.settimeout(10)
                client.sendall(b"GET /models HTTP/1.0\r\n\r\n")
                return b"".join(iter(lambda: client.recv(65536), b""))
        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(get, range(128)))
        assert all(a.startswith(b"HTTP/1.1 200") and b'"modelName": "m"' in a for a in answers)
    finally:
        server.stop()


def test_memory_used_is_the_cgroup_usage_less_its_inactive_file_cache(tmp_path):
    env = fake_cgroup(tmp_path, limit=4 * GIB, current=3 * GIB, inactive_file=GIB)
    assert resources.memory(env).value == 4 * GIB
    assert resources.memory_used(env).value == 2 * GIB


def test_memory_used_without_a_cgroup_is_the_machines(tmp_path):
    env = {resources.PROC_SELF_CGROUP: str(tmp_path / "none")}
    used = resources.memory_used(env)
    assert 0 < used.value < resources.memory(env).value and "meminfo" in used.source


def test_a_load_that_does_not_fit_is_a_507_and_reserves_nothing(registry, tmp_path):
    env = fake_cgroup(tmp_path, limit=1000 * registries.MB, current=800 * registries.MB)
    # 90% of 1000 MB may be used: 100 MB are free
    with pytest.raises(InsufficientStorage, match="507|not enough memory"):
        registry.begin_load("big", "/models/big", need=101 * registries.MB, env=env)
    assert registry.snapshot() == {}
    registry.begin_load("fits", "/models/fits", need=60 * registries.MB, env=env)
    with pytest.raises(InsufficientStorage):  # 60 MB promised to the load under way
        registry.begin_load("second", "/models/second", need=60 * registries.MB, env=env)


def test_holders_are_other_live_processes_holding_that_generation(registry, roomy):
    entry = loaded(registry, "m", roomy)
    registry.record_holdings({entry.key: entry.generation})  # this process: not counted
    assert registry.holders(entry) == []
    parent = os.getppid()
    (registry.workers / f"{parent}.json").write_text(json.dumps({entry.key: entry.generation}))
    assert registry.holders(entry) == [parent]
    (registry.workers / f"{parent}.json").write_text(json.dumps({entry.key: "an older load"}))
    assert registry.holders(entry) == []
    (registry.workers / "999999999.json").write_text(json.dumps({entry.key: entry.generation}))
    assert registry.holders(entry) == [] and not (registry.workers / "999999999.json").exists()


def _race(root: str, name: str, env: dict[str, str], queue) -> None:
    try:
        registry = Registry(Path(root))
        registry.finish_load(registry.begin_load(name, "/m", need=10, env=env), memory=10)
        queue.put("loaded")
    except Conflict:
        queue.put("409")


def test_concurrent_loads_of_one_name_from_many_processes_have_one_winner(registry, roomy):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_race, args=(str(registry.root), "same", roomy, queue)) for _ in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    results = sorted(queue.get() for _ in processes)
    assert results == ["409"] * 7 + ["loaded"]


def test_concurrent_loads_of_different_names_all_land(registry, roomy):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [context.Process(target=_race, args=(str(registry.root), f"m{i}", roomy, queue)) for i in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    assert [queue.get() for _ in processes] == ["loaded"] * 8
    assert len(registry.snapshot(fresh=True)) == 8


def test_the_list_server_answers_get_from_the_registry(registry, roomy):
    loaded(registry, "m", roomy, url="/opt/ml/models/m/model")
    status, body, media_type = registries.answer_get(registry, "/models?limit=5")
    assert (status, json.loads(body), media_type) == (
        200, {"models": [{"modelName": "m", "modelUrl": "/opt/ml/models/m/model"}]}, "application/json")
    assert registries.answer_get(registry, "/models/m")[0] == 200
    assert registries.answer_get(registry, "/models/other")[0] == 404
    assert registries.answer_get(registry, "/models?limit=zero")[0] == 400
    status, body, _ = registries.answer_get(registry, "/models/%0A" + "x" * 5000)
    assert status == 400 and len(body) < 200  # refused as DELETE refuses it, never echoed whole


# -- WorkerModels and the routes, in one process --------------------------------------------
@pytest.fixture
def model_dir(tmp_path, iris_model) -> Path:
    folder = tmp_path / "models" / "iris" / "model"
    folder.mkdir(parents=True)
    joblib.dump(iris_model, folder / "model.joblib")
    return folder


@pytest.fixture
def mme_client(tmp_path, make_hooks, make_config, iris_model, monkeypatch):
    def model_fn(folder):
        return joblib.load(Path(folder) / "model.joblib")

    monkeypatch.setenv(settings.RUNTIME_DIR, str(tmp_path / "runtime"))
    app = create_app(make_hooks(iris_model, model_fn=model_fn), make_config(multi_model=True, workers=2),
                     settings.paths({settings.BASE_DIR: str(tmp_path / "ml")}))
    return app.test_client()


def test_the_routes_load_list_invoke_and_unload(mme_client, model_dir, iris):
    assert mme_client.get("/ping").status_code == 200
    assert mme_client.get("/models").get_json() == {"models": []}
    answer = mme_client.post("/models", json={"model_name": "iris", "url": str(model_dir)})
    assert answer.status_code == 200, answer.text
    assert mme_client.post("/models", json={"model_name": "iris", "url": str(model_dir)}).status_code == 409
    assert mme_client.get("/models/iris").get_json() == {"modelName": "iris", "modelUrl": str(model_dir)}
    features, labels = iris
    body = "\n".join(",".join(map(str, row)) for row in features[:5])
    answer = mme_client.post("/models/iris/invoke", data=body, content_type="text/csv")
    assert answer.status_code == 200 and answer.text.split() == list(labels[:5])
    assert mme_client.delete("/models/iris").status_code == 200
    assert mme_client.post("/models/iris/invoke", data=body, content_type="text/csv").status_code == 404
    assert mme_client.delete("/models/iris").status_code == 404
    assert mme_client.post("/invocations", data=body, content_type="text/csv").status_code == 503


@pytest.mark.parametrize("body, status", [
    ("not json", 400), ({"url": "/x"}, 400), ({"model_name": "m"}, 400), ({"model_name": "a/b", "url": "/x"}, 400),
    ({"model_name": "m", "url": "relative/path"}, 400), ({"model_name": "m", "url": "/no/such/folder"}, 404),
])
def test_a_bad_load_request_says_why(mme_client, body, status):
    answer = (mme_client.post("/models", data=body) if isinstance(body, str) else mme_client.post("/models", json=body))
    assert answer.status_code == status, answer.text


def test_a_folder_without_a_model_is_a_404_and_a_broken_one_a_400(mme_client, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert mme_client.post("/models", json={"model_name": "m", "url": str(empty)}).status_code == 404
    (empty / "model.joblib").write_bytes(b"not a pickle")
    answer = mme_client.post("/models", json={"model_name": "m", "url": str(empty)})
    assert answer.status_code == 400 and "cannot be loaded" in answer.text
    assert mme_client.get("/models").get_json() == {"models": []}  # a failed load leaves nothing


def test_a_worker_drops_its_copy_once_the_registry_unlists_it(tmp_path, model_dir):
    registry = Registry(tmp_path / "registry")
    worker = WorkerModels(registry, lambda folder: LoadedModel(model=np.zeros(10)), workers=2, timeout=5)
    other = WorkerModels(registry, lambda folder: LoadedModel(model=np.zeros(10)), workers=2, timeout=5)
    worker.load("m", str(model_dir))
    first = other.model("m")  # lazily, on first use
    assert other.model("m") is first
    registry.remove("m")  # as another worker's DELETE does
    other.sync()
    with pytest.raises(NotFound):
        other.model("m")
