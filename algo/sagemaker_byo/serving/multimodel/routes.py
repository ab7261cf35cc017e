"""Multi-model endpoints (SAGEMAKER_MULTI_MODEL=true): the /models routes of SageMaker's
contract, and each gunicorn worker's copies of the models the registry lists.

The registry (registry.py) is the one truth: a model is loaded when it lists it. A worker loads its
own copy lazily, on the first invocation it serves, and a watcher thread drops every copy the
registry no longer lists (or lists with a newer load), frees the memory, and records what the
worker still holds, so DELETE /models/<name> answers only once every worker's copy is gone.

    POST   /models                {"model_name", "url"}: load (200), 409 loaded, 404/400 no model, 507 memory
    GET    /models                {"models": [{"modelName", "modelUrl"}], "nextPageToken"}
    GET    /models/<name>         {"modelName", "modelUrl"}, or 404
    DELETE /models/<name>         unload, memory freed before the 200; 404 if not loaded
    POST   /models/<name>/invoke  as /invocations, against that model; 404 if not loaded
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import logging
import os
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Response, request

from ... import resources, settings
from ...errors import BadRequest, HTTPError, InsufficientStorage, ModelNotReady, NotFound, PayloadTooLarge, quoted
from .. import logs, metrics, pipeline
from . import registry as registries
from .registry import Entry, Registry

log = logging.getLogger("serve")

WATCH_INTERVAL = 0.05  # seconds between a worker's looks at the registry
UNLOAD_WAIT = 0.9  # of MODEL_SERVER_TIMEOUT: how long DELETE waits for busy workers to free a model
REASON_LIMIT = 200  # characters of why a load failed, in the answer (the log has all of it)


def _trim_memory() -> None:
    """Hand freed heap back to the kernel: the allocator keeps up to MALLOC_TRIM_THRESHOLD_ otherwise."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _reason(loaded: pipeline.LoadedModel, folder: str) -> Exception:
    """A failed load as the status SageMaker expects: 507 out of memory, 404 no model file, else 400."""
    reason = loaded.error or "unknown error"
    reason = " ".join(reason.split())  # one line
    reason = reason if len(reason) <= REASON_LIMIT else reason[:REASON_LIMIT] + "..."
    if reason.startswith("MemoryError"):
        return InsufficientStorage(f"not enough memory to load the model in {folder}")
    if reason.startswith(("FileNotFoundError", "IsADirectoryError", "NotADirectoryError")):
        return NotFound(f"no loadable model in {folder}: {reason}")
    return BadRequest(f"the model in {folder} cannot be loaded: {reason}")


class WorkerModels:
    """This worker's copies of the registry's models, loaded on first use."""

    def __init__(self, registry: Registry, load: Callable[[Path], pipeline.LoadedModel], workers: int,
                 timeout: float) -> None:
        self.registry = registry
        self._load = load
        self._workers = workers
        self._timeout = timeout
        self._lock = threading.RLock()
        self._pid: int | None = None
        self._models: dict[str, tuple[str, pipeline.LoadedModel]] = {}  # key: (generation, model)
        self._loading: dict[str, str] = {}  # key: generation, being loaded here
        self._dropped: list[tuple[str, str, weakref.ref]] = []  # unlisted, still referenced
        self._recorded: dict[str, str] | None = None

    # -- per worker -----------------------------------------------------------------------
    def _ensure_watching(self) -> None:
        """gunicorn builds the app in its master and forks: each worker starts its own watcher."""
        if self._pid == os.getpid():
            return
        with self._lock:
            self._pid = os.getpid()
            self._models, self._loading, self._dropped, self._recorded = {}, {}, [], None
            threading.Thread(target=self._watch, name="model-watcher", daemon=True).start()

    def _watch(self) -> None:
        pid = self._pid
        while self._pid == pid:
            time.sleep(WATCH_INTERVAL)
            try:
                self.sync()
            except Exception:  # noqa: BLE001 - keep watching; the next look may succeed
                log.exception("the model watcher failed; retrying")

    def sync(self) -> None:
        """Drop the copies the registry no longer lists (or lists with a newer load) and free them."""
        listed = self.registry.snapshot()
        with self._lock:
            stale = [k for k, (generation, _) in self._models.items()
                     if k not in listed or listed[k].generation != generation]
            for k in stale:
                generation, loaded = self._models.pop(k)
                self._dropped.append((k, generation, weakref.ref(loaded)))
                del loaded
        self._release()

    def _release(self) -> None:
        if self._dropped:
            gc.collect()
            with self._lock:
                before = len(self._dropped)
                self._dropped = [d for d in self._dropped if d[2]() is not None]
                freed = before - len(self._dropped)
            if freed:
                _trim_memory()
        self._record()

    def _record(self) -> None:
        with self._lock:
            holdings = {k: g for k, (g, _) in self._models.items()}
            holdings.update(self._loading)
            holdings.update({k: g for k, g, ref in self._dropped if ref() is not None})
            if holdings != self._recorded:
                self.registry.record_holdings(holdings)
                self._recorded = holdings

    # -- the routes' work -----------------------------------------------------------------
    def load(self, name: str, url: str) -> Entry:
        """POST /models: load `url` in this worker and list it once it is ready."""
        self._ensure_watching()
        folder = Path(url)
        if not folder.is_absolute():
            raise BadRequest("url must be an absolute path to the model's folder")
        try:
            is_dir = folder.is_dir()
        except (OSError, ValueError) as error:  # a name too long, a NUL byte, no permission
            raise BadRequest(f"url {quoted(url, 200)} cannot be read ({type(error).__name__})") from None
        if not is_dir:
            raise NotFound(f"no model folder at {quoted(url, 200)}")
        # Counting stops once past the container's memory: such a folder is a 507 whatever the rest.
        size = registries.model_size(folder, stop_above=resources.memory().value)
        # Each worker may come to hold a copy, and unpickling needs about one more while it runs.
        entry = self.registry.begin_load(name, str(folder), need=size * (self._workers + 1))
        started = time.monotonic()
        try:
            with self._lock:
                self._loading[entry.key] = entry.generation
            self._record()
            before = _rss()
            loaded = self._load(folder)
            grew = max(0, _rss() - before)
            if not loaded.ready:
                raise _reason(loaded, quoted(url, 200))
            with self._lock:
                self._models[entry.key] = (entry.generation, loaded)
            ready = self.registry.finish_load(entry, memory=grew or size)
        except BaseException:
            self.registry.abort_load(entry)
            raise
        finally:
            with self._lock:
                self._loading.pop(entry.key, None)
            self._record()
        log.info("loaded model %s from %s in %.2fs (%.1f MB on disk, this worker grew by %.1f MB)",
                 quoted(name), quoted(url, 200), time.monotonic() - started, size / registries.MB,
                 grew / registries.MB)
        return ready

    def model(self, name: str) -> pipeline.LoadedModel:
        """The model to invoke: this worker's copy, loaded now if it has none of the listed load."""
        self._ensure_watching()
        entry = self._listed(name)
        with self._lock:
            held = self._models.get(entry.key)
            if held is not None and held[0] == entry.generation:
                return held[1]
            self._loading[entry.key] = entry.generation
        try:
            self._record()  # before loading: an unload racing this load waits for it
            registries.check_memory(entry.memory or entry.need // (self._workers + 1))
            started = time.monotonic()
            loaded = self._load(Path(entry.url))
            if not loaded.ready:
                raise ModelNotReady(f"model {quoted(name)} could not be loaded in this worker; the log says why")
            current = self.registry.get(name, fresh=True)
            if current is None or current.generation != entry.generation:
                raise NotFound(f"model {quoted(name)} was unloaded")
            with self._lock:
                self._models[entry.key] = (entry.generation, loaded)
            log.info("model %s loaded in worker %d on first use in %.2fs", quoted(name), os.getpid(),
                     time.monotonic() - started)
            return loaded
        finally:
            with self._lock:
                self._loading.pop(entry.key, None)
            self._record()

    def _listed(self, name: str) -> Entry:
        """The registry's ready entry; a load under way is waited for (an invoke racing the load)."""
        deadline = time.monotonic() + self._timeout
        entry = self.registry.get(name)
        while entry is not None and entry.state == registries.LOADING:
            if not registries.alive(entry.pid):
                break
            if time.monotonic() > deadline:
                raise ModelNotReady(f"model {quoted(name)} is still loading")
            time.sleep(0.02)
            entry = self.registry.get(name)
        if entry is None or entry.state != registries.READY:
            raise NotFound(f"model {quoted(name)} is not loaded; load it with POST /models")
        return entry

    def unload(self, name: str) -> Entry:
        """DELETE /models/<name>: unlist it, free this worker's copy, wait until the others freed theirs."""
        self._ensure_watching()
        entry = self.registry.remove(name)
        self.sync()
        deadline = time.monotonic() + self._timeout * UNLOAD_WAIT
        while holders := self.registry.holders(entry):
            if time.monotonic() > deadline:
                log.warning("model %s unloaded, but workers %s still hold it (a request in flight); "
                            "they free it when it ends", quoted(name), holders)
                break
            time.sleep(0.01)
        log.info("unloaded model %s", quoted(name))
        return entry


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def registry_for(env: dict[str, str] | None = None) -> Registry:
    """The registry `serve` set up under its runtime folder, or a private one (an app built alone)."""
    env = os.environ if env is None else env
    runtime = env.get(settings.RUNTIME_DIR) or tempfile.mkdtemp(prefix="sagemaker-models-")
    return Registry(registries.registry_dir(Path(runtime)))


CATALOGUE = "algorithm"  # algo/algorithm.py: the estimators this image's models are made of


def import_catalogue() -> None:
    """Import the catalogue's estimators now, in gunicorn's master before it forks, so their code
    is shared by the workers instead of imported (about 80 MB) by each at its first load."""
    try:
        importlib.import_module(CATALOGUE)
    except Exception as error:  # noqa: BLE001 - only a saving; each worker imports what it needs
        log.info("not importing the catalogue before forking (%s: %s)", type(error).__name__, error)


# The outcome label of a load (POST /models), by the status it was refused with.
LOAD_OUTCOMES = {507: "insufficient_memory", 409: "conflict", 404: "not_found"}


def add_routes(app: Flask, hooks: pipeline.Hooks, config: settings.Serving, registry: Registry | None = None) -> None:
    registry = registry or registry_for()
    import_catalogue()
    def load(folder: Path) -> pipeline.LoadedModel:  # every model as the endpoint's format says
        return pipeline.load_model(hooks, folder, threads=config.threads, model_format=config.model_format)

    models = WorkerModels(registry, load, config.workers, config.timeout)
    app.extensions["sagemaker_models"] = models

    @app.post("/models")
    def load_model() -> Response:
        try:
            body = json.loads(request.get_data(cache=False))
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past Python's limit
            body = None
        if not isinstance(body, dict):
            raise BadRequest('send a JSON object: {"model_name": NAME, "url": FOLDER}')
        name = registries.check_name(body.get("model_name"))
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise BadRequest("url must be the path of the model's folder")
        try:
            entry = models.load(name, url)
        except HTTPError as error:
            metrics.recorder().load_outcome(LOAD_OUTCOMES.get(error.status, "failed"))
            raise
        metrics.recorder().load_outcome("loaded")
        return _json({"status": f"model {quoted(name)} loaded", **entry.listed()})

    @app.get("/models")
    def list_models() -> Response:
        return _json(registry.page(request.args.get("next_page_token"), request.args.get("limit")))

    @app.get("/models/<name>")
    def describe_model(name: str) -> Response:
        return _json(registry.ready(registries.check_name(name)).listed())

    @app.delete("/models/<name>")
    def unload_model(name: str) -> Response:
        entry = models.unload(registries.check_name(name))
        metrics.recorder().unloaded()
        return _json({"status": f"model {quoted(name)} unloaded", **entry.listed()})

    @app.post("/models/<name>/invoke")
    def invoke_model(name: str) -> Response:
        current = request._get_current_object()
        length = current.content_length
        if length is not None and length > config.max_payload_bytes:
            raise PayloadTooLarge(f"the body is larger than the limit of {config.max_payload_mb} MB")
        loaded = models.model(registries.check_name(name))
        environ = current.environ
        body, answer_type = pipeline.invoke(
            hooks, loaded, current.get_data(cache=False), environ.get("CONTENT_TYPE"),
            environ.get("HTTP_ACCEPT"), config, environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"),
            logs.inference_id(environ),
        )
        return Response(body, status=200, content_type=answer_type)
