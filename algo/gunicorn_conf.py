"""gunicorn's settings, derived from the same environment as nginx's (sagemaker_byo.settings).

`serve` passes `--bind` (a unix socket behind nginx, or the port itself with --no-nginx).
Run `python gunicorn_conf.py` to print the effective settings as JSON.
"""

import gc
import json
import os
import signal

from sagemaker_byo import settings
from sagemaker_byo.serving import logs, supervisor

# No cyclic garbage collection while the master loads the app: importing the libraries and
# unpickling the model make next to no cyclic garbage (a full collection afterwards finds
# none), yet the collector's passes over the growing heap cost about a tenth of the load.
# pre_fork turns it back on.
gc.disable()

_serving = settings.serving()

workers = _serving.workers
worker_class = "sync"  # gevent breaks libraries that cannot be monkey-patched
# nginx answers a slow request at MODEL_SERVER_TIMEOUT with a clear 504; gunicorn replaces the
# stuck worker a moment later.
timeout = _serving.timeout + settings.WORKER_TIMEOUT_MARGIN
graceful_timeout = settings.SHUTDOWN_GRACE
preload_app = _serving.preload  # load the model once, before forking, so workers share it
worker_tmp_dir = "/dev/shm"  # heartbeats; /dev/shm stays writable on a read-only root file system
accesslog = None  # nginx logs each invocation once; /ping is not logged at all
errorlog = "-"
loglevel = {10: "debug", 20: "info", 30: "warning", 40: "error"}.get(_serving.log_level, "info")
if _serving.log_format == logs.JSON:
    from gunicorn.glogging import Logger

    class JsonLogger(Logger):
        """gunicorn's own lines (boot, worker exits) as JSON too (SAGEMAKER_CONTAINER_LOG_FORMAT=json).
        Not through `logconfig_dict`, which would turn on gunicorn's access line for every request."""

        def setup(self, cfg):
            super().setup(cfg)
            for handler in self.error_log.handlers:
                handler.setFormatter(logs.JsonFormatter())

    logger_class = JsonLogger
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190


def pre_fork(server, worker):
    # Objects created before the fork (the model above all) are never touched by the collector
    # again, so their pages stay shared between the workers instead of being copied.
    gc.enable()
    gc.freeze()


_set_parent_death_signal = supervisor.parent_death_signal_setter()


def post_fork(server, worker):
    # A worker ends with its master, even one killed outright, instead of serving on as an orphan.
    if _set_parent_death_signal is not None:
        _set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != worker.ppid:
            os._exit(1)


def child_exit(server, worker):
    # In the master. A worker's counts stay in its metrics files (they survive it); only its live
    # gauges (requests in flight) go. A worker that exits while gunicorn still listens is replaced.
    folder = os.environ.get(supervisor.MULTIPROC_ENV)
    if not folder:
        return
    from sagemaker_byo.serving import metrics

    metrics.mark_process_dead(worker.pid, folder)
    if server.LISTENERS:  # emptied when gunicorn stops: those exits are not restarts
        metrics.recorder().worker_restarted()


if __name__ == "__main__":
    print(json.dumps({
        "workers": workers, "worker_class": worker_class, "timeout": timeout,
        "graceful_timeout": graceful_timeout, "preload_app": preload_app, "loglevel": loglevel,
        "log_format": _serving.log_format, "metrics_dir": os.environ.get(supervisor.MULTIPROC_ENV),
    }))
