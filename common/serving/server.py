"""gunicorn in-process: ``algobox <algorithm> serve`` becomes the gunicorn master (PID 1 in an image).

The model directory is resolved once, in the master, before the workers fork: a ``model.tar.gz`` there is
unpacked once (not once per worker) and the unpacked copy is removed when the server stops. gunicorn's
control socket is per server (in that temporary directory), so two servers on one machine never share one.
Exit codes: 0 after SIGTERM, 3 when the workers cannot boot (the model cannot load), 1 otherwise.
"""

import importlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.errors import HaltServer

from .. import logs
from ..errors import AlgoboxError
from ..model_dir import resolve_model_dir
from ..paths import MLPaths
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


def run(spec, paths=None, settings=None):
    """Serve until SIGTERM; each worker loads the model once from the (once-unpacked) model directory."""
    logs.configure()
    paths = paths or MLPaths.from_env()
    settings = settings or ServingSettings.from_env()
    scratch = Path(tempfile.mkdtemp(prefix="algobox-serve-"))
    try:
        try:
            model_dir = resolve_model_dir(paths.model_dir, scratch / "model")
        except AlgoboxError as exc:
            log.error("Cannot serve: %s", exc)
            return EXIT_BOOT_FAILED
        options = {
            "bind": f"0.0.0.0:{settings.port}",
            "workers": settings.workers,
            "worker_class": "gthread",
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
        log.info("Serving %s on port %d with %d workers, timeout %d s, max payload %d MB%s", spec.name,
                 settings.port, settings.workers, settings.timeout, settings.max_payload_mb,
                 ", batch transform" if settings.batch else "")
        for module in spec.serving_preload:
            started = time.perf_counter()
            importlib.import_module(module)
            log.info("Imported %s before forking the workers in %.2f s", module, time.perf_counter() - started)

        def factory():
            from .app import create_app

            return create_app(spec, model_dir, settings)

        try:
            _Gunicorn(factory, options).run()
        except HaltServer as exc:
            log.error("Server stopped: %s", exc.reason)
            return EXIT_BOOT_FAILED if exc.exit_status == EXIT_BOOT_FAILED else 1
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            if code:
                log.error("Server stopped with exit code %d%s", code,
                          " (a worker could not boot: see the error above)" if code == EXIT_BOOT_FAILED else "")
            return code
        return 0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        sys.stdout.flush()
