"""nginx in front of gunicorn, as SageMaker's own serving stacks put it (the XGBoost container, the
sagemaker-containers serving stack): nginx holds the slow, stalled and idle client connections, times them
out, enforces the payload limit, and hands gunicorn only whole requests over a Unix socket, each on a new
upstream connection (so keep-alive clients spread over the workers instead of sticking to one).

``ALGOBOX_NGINX``: ``auto`` (default: use nginx when the binary is on PATH), ``off``, or a path to nginx.
``ALGOBOX_CLIENT_TIMEOUT``: seconds a client may take between two reads of its request line/headers or body
before nginx closes it (default 20; the platform's invocation timeout is 60 s).
Without nginx, gunicorn serves the port itself (see ``server.py`` for what bounds slow clients then).
"""

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import time

from .settings import int_env

log = logging.getLogger(__name__)

NGINX_ENV = "ALGOBOX_NGINX"
CLIENT_TIMEOUT_ENV = "ALGOBOX_CLIENT_TIMEOUT"
DEFAULT_CLIENT_TIMEOUT = 20
KEEPALIVE_SECONDS = 75  # longer than the platform's idle connections; idle connections cost nginx ~nothing
BODY_BUFFER = "1m"  # bodies over this go to a temporary file in the server's scratch directory
# Answers: read from gunicorn in 64 KB buffers, 2 MB of them in memory per connection (beyond that, to a
# temporary file): answers of hundreds of MB stream in fewer, larger pieces than nginx's 4-8 KB default.
STOP_SECONDS = 10

CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
{user}pid {root}/nginx.pid;
error_log stderr error;
worker_rlimit_nofile 8192;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server_tokens off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  client_header_timeout {client_timeout}s;
  client_body_timeout {client_timeout}s;
  send_timeout {client_timeout}s;
  keepalive_timeout {keepalive}s;
  reset_timedout_connection on;
  client_max_body_size {max_body};
  client_body_buffer_size {body_buffer};
  upstream gunicorn {{ server unix:{socket}; }}
  server {{
    listen 0.0.0.0:{port} deferred backlog=4096;
    location / {{
      proxy_pass http://gunicorn;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_redirect off;
      proxy_connect_timeout {model_timeout}s;
      proxy_send_timeout {model_timeout}s;
      proxy_read_timeout {model_timeout}s;
      proxy_intercept_errors off;
      proxy_buffer_size 64k;
      proxy_buffers 32 64k;
      proxy_busy_buffers_size 256k;
    }}
    error_page 413 @too_large;
    error_page 502 503 @unavailable;
    error_page 504 @timeout;
    location @too_large {{ default_type application/json;
      return 413 '{{"error": "Request body exceeds MaxPayloadInMB ({max_body} bytes)"}}'; }}
    location @unavailable {{ default_type application/json;
      return 503 '{{"error": "The model server is not available"}}'; }}
    location @timeout {{ default_type application/json;
      return 504 '{{"error": "The model did not answer within SAGEMAKER_MODEL_SERVER_TIMEOUT ({model_timeout} s)"}}'; }}
  }}
}}
"""


def client_timeout(environ=None):
    return int_env(os.environ if environ is None else environ, CLIENT_TIMEOUT_ENV, DEFAULT_CLIENT_TIMEOUT)


def find_nginx(environ=None):
    """The nginx binary to put in front, or None (then gunicorn serves the port itself)."""
    environ = os.environ if environ is None else environ
    choice = environ.get(NGINX_ENV, "auto").strip() or "auto"
    if choice.lower() in ("off", "0", "false", "no"):
        return None
    if choice.lower() in ("auto", "on", "1", "true", "yes"):
        found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                               if os.access(p, os.X_OK)), None)
        if found is None and choice.lower() not in ("auto",):
            raise SystemExit(f"{NGINX_ENV}={choice} but no nginx binary was found")
        return found
    if not os.access(choice, os.X_OK):
        raise SystemExit(f"{NGINX_ENV}={choice!r} is not an executable")
    return choice


def _die_with_parent():
    """In the child before exec: SIGKILL when the server (our parent) dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux: nginx is still stopped on every clean exit
        pass


class Nginx:
    """One nginx master for this server, listening on the platform's port, proxying to gunicorn's socket."""

    def __init__(self, binary, root, port, upstream_socket, settings, environ=None):
        self.binary = binary
        self.root = root
        self.port = port
        self.socket = upstream_socket
        self.settings = settings
        self.client_timeout = client_timeout(environ)
        self.process = None

    def config_text(self):
        return CONFIG.format(
            workers=max(1, min(os.cpu_count() or 1, 4)),
            user="user root root;\n" if os.geteuid() == 0 else "",  # workers must reach the 0700 scratch dir
            root=self.root, client_timeout=self.client_timeout, keepalive=KEEPALIVE_SECONDS,
            max_body=self.settings.max_payload_bytes, body_buffer=BODY_BUFFER, socket=self.socket,
            port=self.port, model_timeout=self.settings.timeout)

    def start(self, ready_seconds=10):
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, "nginx.conf")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.config_text())
        self.process = subprocess.Popen([self.binary, "-e", "stderr", "-p", self.root, "-c", path],
                                        preexec_fn=_die_with_parent)
        deadline = time.monotonic() + ready_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode} at start (see its error above)")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"nginx did not listen on port {self.port} within {ready_seconds} s")
        log.info("nginx (pid %d) in front on port %d: client timeouts %d s, keep-alive %d s, max body %d bytes",
                 self.process.pid, self.port, self.client_timeout, KEEPALIVE_SECONDS,
                 self.settings.max_payload_bytes)
        return self

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        """Graceful (SIGQUIT: finish the requests in flight), then SIGKILL after STOP_SECONDS."""
        if not self.alive():
            return
        self.process.send_signal(signal.SIGQUIT)
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
