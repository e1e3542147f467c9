"""gunicorn in-process: ``algobox <algorithm> serve`` becomes the gunicorn master (PID 1 in an image).

The model directory is resolved once, in the master, before the workers fork: a ``model.tar.gz`` there is
unpacked once (not once per worker) and the unpacked copy is removed when the server stops. gunicorn's
control socket is per server (in that temporary directory), so two servers on one machine never share one.
Exit codes: 0 after SIGTERM, 3 when the workers cannot boot (the model cannot load), 1 otherwise.

When nginx is installed (the images install Debian's), it listens on the port and gunicorn on a Unix socket
behind it (``frontend.py``): slow or stalled clients are nginx's to hold and time out. Without nginx
(``ALGOBOX_NGINX=off``, or a machine without it) gunicorn listens itself; its gthread workers then defer a
connection that sends nothing for 5 s back to their poller, and ``SlowClientWorker`` below bounds each read of
a request started but stalled by ``ALGOBOX_CLIENT_TIMEOUT`` s, so a stalled client ties a handler thread up
for that long at most (with nginx, not at all).
"""

import importlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.errors import HaltServer
from gunicorn.workers.gthread import ThreadWorker

from .. import logs
from ..errors import AlgoboxError
from ..model_dir import resolve_model_dir
from ..paths import MLPaths
from .frontend import Nginx, client_timeout, find_nginx
from .settings import ServingSettings

log = logging.getLogger(__name__)
GRACEFUL_TIMEOUT = 25  # the platform waits 30 s after SIGTERM
EXIT_BOOT_FAILED = 3


class _Gunicorn(BaseApplication):
    def __init__(self, factory, options):
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self):
        return self.factory()


def _worker_started(_worker):
    logs.configure()


class _TimedSocket(socket.socket):
    """A client socket whose blocking mode keeps a timeout: a stalled read raises instead of waiting forever."""

    __slots__ = ()
    read_timeout = 20.0

    def setblocking(self, flag):
        if flag:
            self.settimeout(self.read_timeout)
        else:
            super().setblocking(False)


class SlowClientWorker(ThreadWorker):
    """gunicorn's gthread worker, with every read of a client bounded by ALGOBOX_CLIENT_TIMEOUT seconds."""

    def enqueue_req(self, conn):
        if type(conn.sock) is socket.socket:
            _TimedSocket.read_timeout = float(client_timeout())
            conn.sock.__class__ = _TimedSocket
        super().enqueue_req(conn)


class _Frontend:
    """nginx started when gunicorn's sockets are bound, stopped when gunicorn exits; its death stops us."""

    def __init__(self, nginx):
        self.nginx = nginx
        self.failed = None
        self.stopping = threading.Event()

    def when_ready(self, _arbiter):
        try:
            self.nginx.start()
        except RuntimeError as exc:
            self.failed = str(exc)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        threading.Thread(target=self._watch, name="algobox-nginx-watch", daemon=True).start()

    def _watch(self):
        # poll, never a blocking wait: gunicorn's master reaps children with waitpid(-1) and must not stall
        while not self.stopping.wait(1.0):
            if not self.nginx.alive():
                self.failed = "nginx exited unexpectedly"
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def on_exit(self, _arbiter):
        self.stopping.set()
        self.nginx.stop()


def run(spec, paths=None, settings=None):
    """Serve until SIGTERM; each worker loads the model once from the (once-unpacked) model directory."""
    logs.configure()
    paths = paths or MLPaths.from_env()
    settings = settings or ServingSettings.from_env()
    scratch = Path(tempfile.mkdtemp(prefix="algobox-serve-"))
    frontend = None
    master = os.getpid()  # workers are forked inside _Gunicorn.run(): their exit unwinds through here too
    try:
        try:
            model_dir = resolve_model_dir(paths.model_dir, scratch / "model")
        except AlgoboxError as exc:
            log.error("Cannot serve: %s", exc)
            return EXIT_BOOT_FAILED
        binary = find_nginx()
        bind = f"0.0.0.0:{settings.port}"
        if binary is not None:
            upstream = scratch / "gunicorn.sock"
            frontend = _Frontend(Nginx(binary, str(scratch / "nginx"), settings.port, str(upstream), settings))
            bind = f"unix:{upstream}"
        options = {
            "bind": bind,
            "workers": settings.workers,
            "worker_class": "gthread" if frontend is not None else "common.serving.server.SlowClientWorker",
            "threads": 4,
            "timeout": settings.timeout,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "keepalive": 5,
            "post_worker_init": _worker_started,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": f"algobox-{spec.name}",
            "control_socket": str(scratch / "gunicorn.ctl"),
            "worker_tmp_dir": str(scratch),
        }
        if frontend is not None:
            options.update(when_ready=frontend.when_ready, on_exit=frontend.on_exit)
        log.info("Serving %s on port %d with %d workers, timeout %d s, max payload %d MB%s, %s", spec.name,
                 settings.port, settings.workers, settings.timeout, settings.max_payload_mb,
                 ", batch transform" if settings.batch else "",
                 f"nginx {binary} in front" if frontend is not None else
                 f"gunicorn alone (no nginx; client reads bounded by {client_timeout()} s)")
        for module in spec.serving_preload:
            started = time.perf_counter()
            importlib.import_module(module)
            log.info("Imported %s before forking the workers in %.2f s", module, time.perf_counter() - started)

        def factory():
            from .app import create_app

            return create_app(spec, model_dir, settings)

        try:
            _Gunicorn(factory, options).run()
            if frontend is not None and frontend.failed:
                log.error("Server stopped: %s", frontend.failed)
                return 1
        except HaltServer as exc:
            log.error("Server stopped: %s", exc.reason)
            return EXIT_BOOT_FAILED if exc.exit_status == EXIT_BOOT_FAILED else 1
        except SystemExit as exc:
            if os.getpid() != master:
                raise  # a worker exiting: nothing of the master's is its to report or remove
            code = exc.code if isinstance(exc.code, int) else 1
            if frontend is not None and frontend.failed:
                log.error("Server stopped: %s", frontend.failed)
                return 1
            if code:
                log.error("Server stopped with exit code %d%s", code,
                          " (a worker could not boot: see the error above)" if code == EXIT_BOOT_FAILED else "")
            return code
        return 0
    finally:
        if os.getpid() == master:
            if frontend is not None:
                frontend.on_exit(None)
            shutil.rmtree(scratch, ignore_errors=True)
        sys.stdout.flush()
