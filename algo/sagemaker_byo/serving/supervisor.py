"""`serve`: start gunicorn, then nginx in front of it, and watch both.

- gunicorn loads the model and binds a unix socket; nginx starts only once that socket exists,
  so its first /ping is never a 502.
- SIGTERM (or SIGINT): nginx stops accepting and finishes in-flight requests, then gunicorn
  stops; exit 0. Whatever is still running after SHUTDOWN_GRACE seconds is killed and logged.
- nginx or gunicorn dying on its own: stop the other and exit 1, so SageMaker replaces the
  container.
- `serve` itself killed outright (SIGKILL): the kernel tells nginx and gunicorn (their parent-death
  signal), and they stop instead of outliving it.
- Metrics: each start gets a fresh, empty folder for prometheus_client's multiprocess files
  (PROMETHEUS_MULTIPROC_DIR, given to gunicorn), and a thread here answers GET /metrics from it
  behind nginx (metrics.ScrapeServer), so a scrape never waits for a busy worker.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import resources, settings
from . import logs
from .multimodel import registry

log = logging.getLogger("serve")

ALGO_DIR = Path(__file__).resolve().parents[2]  # algo/, beside the package
NGINX_TEMPLATE = ALGO_DIR / "nginx.conf"
GUNICORN_CONF = ALGO_DIR / "gunicorn_conf.py"


def render_nginx_conf(config: settings.Serving, runtime_dir: Path, socket: Path,
                      template: Path = NGINX_TEMPLATE, model_ready: bool = False) -> str:
    values = {
        "ping": ('if ($request_method !~ ^(GET|HEAD)$) { return 405 "only GET is allowed on /ping\\n"; }\n'
                 "            return 200;") if model_ready else "proxy_pass http://model_server;",
        "runtime_dir": str(runtime_dir),
        "socket": str(socket),
        "port": str(config.port),
        "max_body_mb": str(config.max_payload_mb),
        # Hold bodies up to 1 MB in memory; larger ones go to a file under the runtime folder.
        "body_buffer_kb": str(min(config.max_payload_mb * 1024, 1024)),
        "timeout": str(config.timeout),
        "multi_model": registry.nginx_locations(runtime_dir) if config.multi_model else "",
        "routes": config.routes,
        "metrics": metrics_location(runtime_dir, config.metrics),
        "access_log_format": logs.nginx_log_format(config.log_format),
    }
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    if "{{" in text:
        raise ValueError(f"{template} has a placeholder serve does not fill: {text[text.index('{{'):][:40]}")
    return text


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name for its folder


def fresh_metrics_folder(runtime_dir: Path) -> Path:
    """An empty metrics folder: counts start at zero with each start of the server."""
    folder = metrics_folder(runtime_dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


NGINX_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "notice": logging.INFO, "warn": logging.WARNING,
                "error": logging.ERROR, "crit": logging.CRITICAL, "alert": logging.CRITICAL,
                "emerg": logging.CRITICAL}


def relay_lines(stream, logger: logging.Logger) -> None:
    """A child's stderr, line by line, into our log (nginx's `2026/01/01 00:00:00 [warn] 7#7: ...`
    at its own level)."""
    with stream:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            level = logging.WARNING
            start, end = line.find(" ["), line.find("] ")
            if 0 <= start < end:
                level = NGINX_LEVELS.get(line[start + 2:end], logging.WARNING)
                line = line[end + 2:]
            logger.log(level, "%s", line)


def metrics_socket(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / "metrics.sock"


def metrics_folder(runtime_dir: Path) -> Path:
    return Path(runtime_dir) / "metrics"


def metrics_location(runtime_dir: Path, enabled: bool) -> str:
    """/metrics for nginx.conf: to serve's scrape server, or a 404 saying it is turned off."""
    if not enabled:
        return f'location = /metrics {{ return 404 "metrics are turned off ({settings.METRICS}=false)\\n"; }}'
    return f"""location = /metrics {{
            if ($request_method !~ ^(GET|HEAD)$) {{ return 405 "only GET is allowed on /metrics\\n"; }}
            proxy_pass http://unix:{metrics_socket(runtime_dir)}:;
        }}"""


def ping_status(path: Path, timeout: float) -> int:
    """The status of GET /ping through gunicorn's unix socket. A bare HTTP/1.0 request: importing
    http.client would cost serve about 20 ms before it can start gunicorn."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(b"GET /ping HTTP/1.0\r\nHost: localhost\r\n\r\n")
        with sock.makefile("rb") as reply:
            status_line = reply.readline()  # b"HTTP/1.1 200 OK\r\n"
    if not status_line:
        raise ConnectionResetError("gunicorn closed the connection without answering")
    try:
        return int(status_line.split()[1])
    except (IndexError, ValueError):
        raise RuntimeError(f"gunicorn answered /ping without a status line: {status_line[:80]!r}") from None


# What the kernel sends a child when `serve` dies, however it dies: nginx's fast shutdown (TERM)
# and gunicorn's quick one (QUIT), each of which stops the child's own workers too.
PARENT_DEATH_SIGNAL = {"nginx": signal.SIGTERM, "gunicorn": signal.SIGQUIT}
# How often serve looks for gunicorn's socket while the model loads: nginx starts at most this
# long after it appears, and a stat() this often costs nothing measurable.
POLL_INTERVAL = 0.002


def on_parent_death(signum: int, parent: int):
    """A preexec_fn: the child gets `signum` when the process that started it dies (Linux)."""
    prctl = parent_death_signal_setter()

    def preexec() -> None:
        if prctl is not None:
            prctl(signum)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os.kill(os.getpid(), signum)
    return preexec


def parent_death_signal_setter():
    """`set(signum)`, which asks the kernel to send this process signum when its parent dies; None
    where there is no prctl (not Linux)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    return lambda signum: prctl(pr_set_pdeathsig, int(signum), 0, 0, 0)


class Supervisor:
    def __init__(self, config: settings.Serving, runtime_dir: Path, use_nginx: bool) -> None:
        self.config = config
        self.runtime_dir = runtime_dir
        self.use_nginx = use_nginx
        self.socket = runtime_dir / "gunicorn.sock"
        self.children: dict[int, str] = {}
        self.stopping = False
        self.failed: str | None = None

    # -- starting -----------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None,
               relay_stderr: bool = False) -> int:
        # Each child leads its own process group, so stopping it takes its workers along.
        process = subprocess.Popen(command, cwd=ALGO_DIR, env=env, start_new_session=True,
                                   stderr=subprocess.PIPE if relay_stderr else None,
                                   preexec_fn=on_parent_death(PARENT_DEATH_SIGNAL[name], os.getpid()))
        self.children[process.pid] = name
        log.info("started %s (pid %d)", name, process.pid)
        if relay_stderr:
            threading.Thread(target=relay_lines, args=(process.stderr, logging.getLogger(f"{name}.error")),
                             name=f"{name}-stderr", daemon=True).start()
        return process.pid

    def start_gunicorn(self) -> int:
        bind = f"unix:{self.socket}" if self.use_nginx else f"0.0.0.0:{self.config.port}"
        env = {**settings.server_environment(threads=self.config.threads),
               settings.RUNTIME_DIR: str(self.runtime_dir)}  # where the workers find the model registry
        env.pop(MULTIPROC_ENV, None)  # prometheus_client's folder is this start's own, or none
        if self.config.metrics:
            env[MULTIPROC_ENV] = str(fresh_metrics_folder(self.runtime_dir))
        return self._spawn("gunicorn", [
            sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF),
            "--bind", bind, "--chdir", str(ALGO_DIR), "wsgi:app",
        ], env=env)

    def start_scrape_server(self) -> None:
        """GET /metrics for nginx, from this process (imported now: prometheus_client costs serve
        tens of milliseconds, spent while gunicorn loads the model). A failure costs the metrics,
        never the endpoint."""
        try:
            from . import metrics
            models = registry.Registry(registry.registry_dir(self.runtime_dir)) if self.config.multi_model else None
            metrics.ScrapeServer(metrics_folder(self.runtime_dir), metrics_socket(self.runtime_dir), models).start()
        except Exception:  # noqa: BLE001 - logged; nginx then answers /metrics 502
            log.exception("could not start the metrics server; /metrics will fail")

    def start_nginx(self, model_ready: bool) -> int:
        conf = self.runtime_dir / "nginx.conf"
        conf.write_text(render_nginx_conf(self.config, self.runtime_dir, self.socket, model_ready=model_ready))
        # In the JSON log format, nginx's error lines (its own text) come through our log as JSON.
        return self._spawn("nginx", ["nginx", "-e", "stderr", "-p", str(self.runtime_dir), "-c", str(conf)],
                           relay_stderr=self.config.log_format == logs.JSON)

    def model_ready(self, gunicorn: int) -> bool:
        """Ask the app's /ping through the socket: True once a worker answers 200, False on 503
        (the model could not be loaded) or when gunicorn died (then `failed` says so)."""
        while not self.stopping:
            try:
                return ping_status(self.socket, timeout=5) == 200
            except OSError:
                time.sleep(POLL_INTERVAL)  # not listening yet, or no worker answered in time
            pid, status = os.waitpid(gunicorn, os.WNOHANG)
            if pid:
                self.children.pop(pid, None)
                self.failed = f"gunicorn exited with code {os.waitstatus_to_exitcode(status)} while starting"
                return False
        return False

    def wait_for_socket(self, gunicorn: int) -> bool:
        """Until gunicorn listens (after loading the model); False if it died or we were stopped."""
        while not self.stopping:
            if self.socket.exists():
                return True
            pid, status = os.waitpid(gunicorn, os.WNOHANG)
            if pid:
                self.children.pop(pid, None)
                self.failed = f"gunicorn exited with code {os.waitstatus_to_exitcode(status)} while starting"
                return False
            time.sleep(POLL_INTERVAL)
        return False

    # -- stopping -----------------------------------------------------------------------
    def _signal(self, name: str, signum: int) -> None:
        """A graceful signal goes to the master, which stops its workers in order; SIGKILL to all."""
        send = os.killpg if signum == signal.SIGKILL else os.kill
        for pid, child in list(self.children.items()):
            if child == name:
                try:
                    send(pid, signum)
                except ProcessLookupError:
                    pass

    def on_stop_signal(self, signum: int, _frame) -> None:
        if self.stopping:
            return
        self.stopping = True
        log.info("received %s: finishing in-flight requests (up to %ds), then stopping",
                 signal.Signals(signum).name, settings.SHUTDOWN_GRACE)
        signal.alarm(settings.SHUTDOWN_GRACE)
        # nginx first: it stops accepting at once and still hands in-flight requests to gunicorn.
        self._signal("nginx" if "nginx" in self.children.values() else "gunicorn",
                     signal.SIGQUIT if "nginx" in self.children.values() else signal.SIGTERM)

    def on_grace_over(self, _signum: int, _frame) -> None:
        names = ", ".join(sorted(set(self.children.values()))) or "nothing"
        log.error("shutdown grace of %ds is over; killing %s and cutting off requests still in flight",
                  settings.SHUTDOWN_GRACE, names)
        for name in set(self.children.values()):
            self._signal(name, signal.SIGKILL)

    def stop_all(self) -> None:
        """After a child died on its own: stop the rest quickly (SageMaker is waiting to replace us)."""
        for name in set(self.children.values()):
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        while self.children and time.monotonic() < deadline:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.02)
        for name in set(self.children.values()):
            self._signal(name, signal.SIGKILL)

    # -- running ------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_stop_signal)
        signal.signal(signal.SIGINT, self.on_stop_signal)
        signal.signal(signal.SIGALRM, self.on_grace_over)
        if self.config.multi_model:
            registry.start_list_server(self.runtime_dir)  # GET /models, even while every worker is busy
        gunicorn = self.start_gunicorn()
        if self.use_nginx and self.config.metrics:
            self.start_scrape_server()
        if self.use_nginx and self.wait_for_socket(gunicorn):
            ready = self.model_ready(gunicorn)
            if not self.failed and not self.stopping:
                if not ready:
                    log.warning("the model is not loaded; /ping answers 503 (the reason is logged above)")
                self.start_nginx(model_ready=ready)
        if self.failed:
            log.error("%s; stopping", self.failed)
            self.stop_all()
            return 1
        while self.children:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            name = self.children.pop(pid, None)
            if name is None:
                continue  # an orphan reparented to us (we may be PID 1)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                log.info("%s stopped (exit code %d)", name, code)
                if name == "nginx":
                    self._signal("gunicorn", signal.SIGTERM)
                continue
            log.error("%s exited unexpectedly (exit code %d); stopping the server so SageMaker "
                      "replaces the container", name, code)
            try:
                os.killpg(pid, signal.SIGKILL)  # its workers, if any outlived it
            except ProcessLookupError:
                pass
            self.stop_all()
            return 1
        signal.alarm(0)
        if self.stopping:
            log.info("server stopped")
        return 0


def log_resources(config: settings.Serving) -> None:
    cpus = resources.cpus()
    given = os.environ.get(settings.WORKERS, "").strip()
    log.info("CPUs: %s; workers: %d (%s)", cpus, config.workers,
             f"{settings.WORKERS}={given}" if given else "one per CPU")
    log.info("memory: %s", resources.describe_memory(resources.memory()))
    threads = {name: os.environ[name] for name in resources.THREAD_VARIABLES if os.environ.get(name, "").strip()}
    if threads:
        log.info("native thread pools as the environment sets them: %s",
                 ", ".join(f"{k}={v}" for k, v in threads.items()))


def runtime_folder(given: str | None) -> Path:
    """Where serve and nginx write everything they write: `given` (SAGEMAKER_RUNTIME_DIR), or a fresh
    folder under the temporary folder (/tmp, or TMPDIR). Never a fixed system path, so serve runs
    as any user on a read-only root file system. Raises OSError when it is not writable."""
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="sagemaker-serve-"))
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(0o755)  # as root, nginx's workers run as nobody and must reach the socket
    tempfile.TemporaryFile(dir=path).close()  # writable, or the error names the folder now
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--no-nginx", action="store_true",
        help="let gunicorn bind the port itself (host runs and development; the image always uses nginx)",
    )
    args = parser.parse_args(argv)
    try:
        log_format = settings.log_format()
    except settings.SettingsError:
        log_format = logs.TEXT  # and settings.serving() below names the mistake
    logs.configure(settings.log_level(), log_format)
    try:
        config = settings.serving()
    except settings.SettingsError as error:
        log.error("bad configuration: %s", error)
        return 2
    given = os.environ.get(settings.RUNTIME_DIR)
    try:
        runtime_dir = runtime_folder(given)
    except OSError as error:
        log.error("serve needs a writable folder for its sockets, nginx.conf and nginx's temporary files, "
                  "and has none (%s): on a read-only root file system mount one on /tmp (docker run --tmpfs "
                  "/tmp), or set %s or TMPDIR to a writable folder", error, settings.RUNTIME_DIR)
        return 2
    supervisor = Supervisor(config, runtime_dir, use_nginx=not args.no_nginx)
    log.info("serving on port %d with %d workers x %d native threads, timeout %ds, body limit %d MB%s",
             config.port, config.workers, config.threads, config.timeout, config.max_payload_mb,
             "" if not args.no_nginx else " (no nginx)")
    log_resources(config)
    try:
        return supervisor.run()
    except Exception:
        log.exception("serve failed; stopping")
        supervisor.stop_all()
        return 1
    finally:
        if not given:
            shutil.rmtree(runtime_dir, ignore_errors=True)
