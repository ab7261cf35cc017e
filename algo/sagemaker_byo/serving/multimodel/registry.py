"""The registry of a multi-model endpoint: which models are loaded, one truth for every worker.

- One JSON file, `registry.json` in `<runtime folder>/models/`. Whoever changes it (a gunicorn
  worker loading or unloading a model) holds an exclusive `flock` on `registry.lock` and replaces
  the file atomically; readers take no lock (a rename is atomic: they see the old file or the new
  one, never half of one) and re-read it only when `stat` says it changed.
- Entries are keyed by a hash of the model name. The name is untrusted (SageMaker's opaque key,
  or anything a caller sends), so it is never part of a path and is quoted, cut short, in answers.
- A model is `loading` (its memory reserved, 409 to a second load, invisible to the list) until
  the worker that loads it marks it `ready`; a load whose worker died is forgotten.
- Each worker writes the models it still holds in memory to `workers/<pid>.json`, so an unload
  can wait until every copy is really freed.
- `serve` runs `ListServer`, a thread answering GET /models and GET /models/<name> from this
  file on a unix socket behind nginx: SageMaker's list calls never queue behind busy workers.

Only the standard library (and resources, errors): `serve` imports this without the model stack.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import socketserver
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ... import resources
from ...errors import BadRequest, Conflict, HTTPError, InsufficientStorage, NotFound, quoted

log = logging.getLogger("serve")

MAX_NAME = 512  # characters of a model name
DEFAULT_PAGE = 100  # models per GET /models page, as Multi Model Server
MAX_PAGE = 1000
HEADROOM = 0.10  # of the memory limit, kept free: the workers' requests need memory too
MB = 1024 * 1024
LOADING, READY = "loading", "ready"


def check_name(name: object) -> str:
    """The model name, if it is one this server keeps: 1-512 printable characters, no '/'."""
    if not isinstance(name, str) or not name:
        raise BadRequest("model_name must be a non-empty string")
    if len(name) > MAX_NAME or not name.isprintable() or "/" in name:
        raise BadRequest(f"model_name must be at most {MAX_NAME} printable characters without '/'")
    if name in (".", ".."):  # a URL path resolves these away: /models/<name> could never reach the model
        raise BadRequest("model_name cannot be '.' or '..'")
    return name


def key(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Entry:
    name: str
    url: str
    generation: str  # new at every load: a reload is not the model that was unloaded
    state: str  # LOADING or READY
    pid: int  # the worker that loads it
    need: int  # bytes reserved for it at load (its size on disk, once per worker and once more)
    memory: int = 0  # bytes the loading worker grew by, once ready
    loaded_at: float = 0.0

    @property
    def key(self) -> str:
        return key(self.name)

    def listed(self) -> dict:
        return {"modelName": self.name, "modelUrl": self.url}


def model_size(folder: Path, stop_above: int | None = None) -> int:
    """Bytes of the regular files in a model folder (symbolic links not followed); the count stops
    as soon as it passes `stop_above` (a folder that big cannot be loaded anyway)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
                if stop_above is not None and total > stop_above:
                    return total
    return total


def check_memory(need: int, reserved: int = 0, env: dict[str, str] | None = None) -> None:
    """507 unless `need` bytes fit in the container's memory, beside `reserved` bytes promised to
    loads under way and HEADROOM of the limit kept free."""
    limit, used = resources.memory(env), resources.memory_used(env)
    free = int(limit.value * (1 - HEADROOM)) - used.value - reserved
    if need > free:
        raise InsufficientStorage(
            f"not enough memory to load this model: it needs about {need / MB:.1f} MB and "
            f"{max(free, 0) / MB:.1f} MB are free ({used.value / MB:.0f} MB used of {limit.value / MB:.0f} MB, "
            f"{limit.source}, {reserved / MB:.1f} MB promised to loads under way); unload a model and retry")


def _token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def _after(token: str) -> str:
    try:
        name = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        name = None
    if name is None or _token(name) != token:  # the decoder skips what is not base64: "!!!!" would pass
        raise BadRequest("next_page_token is not one this server gave")
    return name


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:  # "²" is a digit to isdigit(), not to int()
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE}")
    return min(int(raw), MAX_PAGE)


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.file = self.root / "registry.json"
        self.lock_file = self.root / "registry.lock"
        self.workers = self.root / "workers"
        self.workers.mkdir(parents=True, exist_ok=True)
        self._cached: tuple[tuple, dict[str, Entry]] | None = None
        self._cache_lock = threading.Lock()

    def reset(self) -> None:
        """No model loaded: at start-up, whatever a previous server left."""
        with self._locked():
            self._write({})
            shutil.rmtree(self.workers, ignore_errors=True)
            self.workers.mkdir(parents=True, exist_ok=True)

    # -- reading (no lock) ----------------------------------------------------------------
    def snapshot(self, fresh: bool = False) -> dict[str, Entry]:
        """Every entry by key, re-read only when the file changed (one stat per call)."""
        try:
            stat = self.file.stat()
        except FileNotFoundError:
            return {}
        signature = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
        with self._cache_lock:
            if not fresh and self._cached is not None and self._cached[0] == signature:
                return self._cached[1]
        entries = self._read()
        with self._cache_lock:
            self._cached = (signature, entries)
        return entries

    def get(self, name: str, fresh: bool = False) -> Entry | None:
        return self.snapshot(fresh).get(key(name))

    def ready(self, name: str) -> Entry:
        entry = self.get(name)
        if entry is None or entry.state != READY:
            raise NotFound(f"model {quoted(name)} is not loaded")
        return entry

    def page(self, token: str | None = None, limit: str | None = None) -> dict:
        """One page of GET /models: models in name order after the one the token names."""
        size = _limit(limit)
        entries = sorted((e for e in self.snapshot().values() if e.state == READY), key=lambda e: e.name)
        start = bisect.bisect_right([e.name for e in entries], _after(token)) if token else 0
        chunk = entries[start:start + size]
        body: dict = {"models": [e.listed() for e in chunk]}
        if start + size < len(entries):
            body["nextPageToken"] = _token(chunk[-1].name)
        return body

    def _read(self) -> dict[str, Entry]:
        try:
            data = json.loads(self.file.read_text())
        except FileNotFoundError:
            return {}
        return {k: Entry(**v) for k, v in data.get("models", {}).items()}

    # -- changing (under the lock) --------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, entries: dict[str, Entry]) -> None:
        temporary = self.root / f".registry.{os.getpid()}.{threading.get_ident()}.tmp"
        temporary.write_text(json.dumps({"models": {k: asdict(e) for k, e in entries.items()}}))
        os.replace(temporary, self.file)

    def begin_load(self, name: str, url: str, need: int, env: dict[str, str] | None = None) -> Entry:
        """Reserve `name` for a load by this process: 409 if it is loaded or loading, 507 if
        `need` bytes do not fit beside what other loads under way reserved."""
        with self._locked():
            entries = self._read()
            stale = [k for k, e in entries.items() if e.state == LOADING and not alive(e.pid)]
            for k in stale:
                log.warning("forgetting the load of model %s: its worker (pid %d) died", quoted(entries[k].name),
                            entries[k].pid)
                del entries[k]
            current = entries.get(key(name))
            if current is not None:
                raise Conflict(f"model {quoted(name)} is already {'loading' if current.state == LOADING else 'loaded'}")
            check_memory(need, sum(e.need for e in entries.values() if e.state == LOADING), env)
            entry = Entry(name=name, url=url, generation=secrets.token_hex(8), state=LOADING, pid=os.getpid(),
                          need=need)
            entries[entry.key] = entry
            self._write(entries)
        return entry

    def finish_load(self, entry: Entry, memory: int) -> Entry:
        with self._locked():
            entries = self._read()
            ready = Entry(**{**asdict(entry), "state": READY, "memory": memory, "loaded_at": time.time()})
            entries[entry.key] = ready
            self._write(entries)
        return ready

    def abort_load(self, entry: Entry) -> None:
        with self._locked():
            entries = self._read()
            if entries.get(entry.key, None) is not None and entries[entry.key].generation == entry.generation:
                del entries[entry.key]
                self._write(entries)

    def remove(self, name: str) -> Entry:
        """Unlist a loaded model (404 if it is not loaded); the workers then drop their copies."""
        with self._locked():
            entries = self._read()
            entry = entries.get(key(name))
            if entry is None or entry.state != READY:
                raise NotFound(f"model {quoted(name)} is not loaded")
            del entries[entry.key]
            self._write(entries)
        return entry

    # -- which worker holds what ----------------------------------------------------------
    def record_holdings(self, holdings: dict[str, str]) -> None:
        """The models (key: generation) this process still has in memory."""
        path = self.workers / f"{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(holdings))
        os.replace(temporary, path)

    def holders(self, entry: Entry) -> list[int]:
        """Other live processes still holding this load of the model."""
        found = []
        for path in self.workers.glob("*.json"):
            pid = int(path.stem) if path.stem.isdigit() else 0
            if pid == os.getpid() or pid == 0:
                continue
            if not alive(pid):
                path.unlink(missing_ok=True)
                continue
            try:
                held = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if held.get(entry.key) == entry.generation:
                found.append(pid)
        return found


# -- the list server, in `serve` ------------------------------------------------------------
def answer_get(registry: Registry, target: str) -> tuple[int, bytes, str]:
    """GET /models or GET /models/<name>: status, body and media type."""
    parts = urlsplit(target)
    try:
        if parts.path == "/models":
            query = parse_qs(parts.query)
            body = registry.page((query.get("next_page_token") or [None])[0], (query.get("limit") or [None])[0])
            return 200, json.dumps(body).encode(), "application/json"
        if parts.path.startswith("/models/"):
            name = unquote(parts.path[len("/models/"):], errors="surrogateescape")
            if not name or "/" in name:
                raise NotFound("no such route; this server answers /ping, /models and /models/<name>")
            return 200, json.dumps(registry.ready(check_name(name)).listed()).encode(), "application/json"
        raise NotFound("no such route; this server answers /ping, /models and /models/<name>")
    except HTTPError as error:
        return error.status, (error.message + "\n").encode(), "text/plain"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    registry: Registry

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        try:
            status, body, media_type = answer_get(self.registry, self.path)
        except Exception:  # noqa: BLE001 - logged; the client gets no traceback
            log.exception("the model list failed")
            status, body, media_type = 500, b"internal error listing the models; the server log has the details\n", \
                "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - polled every few seconds: not logged
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    # listen()'s backlog: socketserver's default of 5 refused nginx's connections (a 502) when
    # more than a few list calls came at once.
    request_queue_size = 1024


class ListServer:
    """GET /models and GET /models/<name> from the registry, on a unix socket, in a thread of `serve`."""

    def __init__(self, registry: Registry, socket_path: Path) -> None:
        try:
            socket_path.unlink()
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise
        handler = type("Handler", (_Handler,), {"registry": registry})
        self.server = _UnixServer(str(socket_path), handler)
        socket_path.chmod(0o666)  # nginx's workers may run as another user
        self.socket_path = socket_path
        self.thread = threading.Thread(target=self.server.serve_forever, name="model-list", daemon=True)

    def start(self) -> ListServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def registry_dir(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / "models"


def list_socket(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / "models.sock"


def start_list_server(runtime_dir: Path) -> ListServer:
    """A fresh registry (no model loaded) and its list server, before gunicorn starts."""
    registry = Registry(registry_dir(runtime_dir))
    registry.reset()
    return ListServer(registry, list_socket(runtime_dir)).start()


def nginx_locations(runtime_dir: Path) -> str:
    """The /models routes for nginx.conf: reads to the list server, the rest to the workers."""
    upstream = f"http://unix:{list_socket(runtime_dir)}:"
    get = f"if ($request_method = GET) {{ proxy_pass {upstream}; }}"
    return f"""# Multi-model endpoint: the list (polled by SageMaker beside /ping) comes from serve's own
        # registry server and never waits for a busy worker; loads, unloads and invocations go to them.
        location = /models {{
            {get}
            proxy_pass http://model_server;
        }}
        location ~ ^/models/[^/]+$ {{
            {get}
            proxy_pass http://model_server;
        }}
        location ~ ^/models/[^/]+/invoke$ {{
            proxy_pass http://model_server;
        }}"""
