"""A SageMaker platform emulator for tests: an /opt/ml root, config files, File and Pipe channels,
``algobox <algorithm> train`` as a real subprocess and ``algobox <algorithm> serve`` on a free port.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).parent / "algobox"
ALGOBOX = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "common.cli"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TrainResult:
    returncode: int
    output: str
    failure: str | None
    model_dir: Path

    @property
    def model_files(self):
        return sorted(p.name for p in self.model_dir.iterdir()) if self.model_dir.exists() else []


class PipeWriter(threading.Thread):
    """Writes one epoch's bytes into a FIFO, as the platform does; tolerates an early-closing reader."""

    def __init__(self, path, chunks):
        super().__init__(daemon=True)
        self.path = path
        self.chunks = chunks
        self.broken = False
        self.written = 0  # chunks the reader has taken (a FIFO write returns once the pipe holds it)

    def run(self):
        try:
            with open(self.path, "wb") as fifo:
                for chunk in self.chunks:
                    fifo.write(chunk)
                    fifo.flush()
                    self.written += 1
        except BrokenPipeError:
            self.broken = True


class Job:
    """One training job's /opt/ml tree, laid out in a temporary directory."""

    def __init__(self, root):
        self.root = Path(root)
        for sub in ("input/config", "input/data", "model", "output"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.writers = []

    @property
    def model_dir(self):
        return self.root / "model"

    def write_config(self, hyperparameters=None, channels=None, hosts=("algo-1",), current_host="algo-1"):
        """``channels`` maps name -> dict of inputdataconfig keys (ContentType, TrainingInputMode, ...)."""
        config = self.root / "input/config"
        if hyperparameters is not None:
            (config / "hyperparameters.json").write_text(json.dumps({k: str(v) if not isinstance(v, str) else v
                                                                     for k, v in hyperparameters.items()}))
        if channels is not None:
            entries = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                              "RecordWrapperType": "None", **entry} for name, entry in channels.items()}
            (config / "inputdataconfig.json").write_text(json.dumps(entries))
        (config / "resourceconfig.json").write_text(json.dumps(
            {"current_host": current_host, "hosts": list(hosts), "network_interface_name": "lo"}))
        return self

    def add_file(self, channel, name, data):
        path = self.root / "input/data" / channel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def add_pipe(self, channel, epochs):
        """Pipe mode: one FIFO ``<channel>_<epoch>`` per epoch, each fed by a writer thread."""
        for epoch, data in enumerate(epochs):
            fifo = self.root / "input/data" / f"{channel}_{epoch}"
            os.mkfifo(fifo)
            chunks = [data[i:i + (1 << 16)] for i in range(0, len(data), 1 << 16)] if isinstance(data, bytes) else data
            writer = PipeWriter(fifo, chunks)
            writer.start()
            self.writers.append(writer)

    def env(self, extra=None):
        env = {**os.environ, "ALGOBOX_ML_ROOT": str(self.root), "PYTHONUNBUFFERED": "1",
               "ALGOBOX_PIPE_WAIT_SECONDS": "10"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env.update(extra or {})
        return env

    def start_train(self, algorithm, env=None):
        return subprocess.Popen(ALGOBOX + [algorithm, "train"], cwd=REPO, env=self.env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def result(self, process, timeout=300):
        output, _ = process.communicate(timeout=timeout)
        failure_file = self.root / "output/failure"
        failure = failure_file.read_text() if failure_file.exists() else None
        return TrainResult(process.returncode, output, failure, self.model_dir)

    def train(self, algorithm, env=None, timeout=300):
        return self.result(self.start_train(algorithm, env), timeout)


class Server:
    """A running ``algobox <algorithm> serve``: its URL, and its output once stopped."""

    def __init__(self, process, url):
        self.process = process
        self.url = url
        self.output = ""

    def post(self, body, content_type, accept=None, **kwargs):
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        return requests.post(self.url + "/invocations", data=body, headers=headers, timeout=60, **kwargs)

    def get(self, path):
        return requests.get(self.url + path, timeout=10)

    def stop(self, timeout=30):
        """SIGTERM, as the platform sends; returns seconds until the server exited."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.output, _ = self.process.communicate(timeout=timeout)
        return time.monotonic() - start


@contextmanager
def serve(algorithm, ml_root, env=None, startup_timeout=60):
    """Start ``algobox <algorithm> serve`` on a free port, wait for /ping, stop it with SIGTERM after."""
    port = free_port()
    job = Job(ml_root)
    process = subprocess.Popen(
        ALGOBOX + [algorithm, "serve"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=job.env({"SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": "2", **(env or {})}),
    )
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                if requests.get(server.url + "/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # refused, or a worker still loading a big model
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /ping in time")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            try:
                server.stop()
            except subprocess.TimeoutExpired:
                process.kill()
                server.output, _ = process.communicate()
