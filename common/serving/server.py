"""gunicorn in-process: ``algobox <algorithm> serve`` becomes the gunicorn master (PID 1 in an image)."""

import logging

from gunicorn.app.base import BaseApplication

from .. import logs
from ..paths import MLPaths
from .settings import ServingSettings

log = logging.getLogger(__name__)
GRACEFUL_TIMEOUT = 25  # the platform waits 30 s after SIGTERM


class _Gunicorn(BaseApplication):
    def __init__(self, factory, options):
        self.factory = factory
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.factory()


def _worker_started(_worker):
    logs.configure()


def run(spec, paths=None, settings=None):
    """Serve until SIGTERM; each worker loads the model once from /opt/ml/model."""
    logs.configure()
    paths = paths or MLPaths.from_env()
    settings = settings or ServingSettings.from_env()
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
    }
    log.info("Serving %s on port %d with %d workers, timeout %d s, max payload %d MB%s", spec.name,
             settings.port, settings.workers, settings.timeout, settings.max_payload_mb,
             ", batch transform" if settings.batch else "")

    def factory():
        from .app import create_app

        return create_app(spec, paths.model_dir, settings)

    _Gunicorn(factory, options).run()
    return 0
