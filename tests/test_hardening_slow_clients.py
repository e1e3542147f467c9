"""Slow and stalled clients against ``algobox <alg> serve`` (finding #3, #17's keep-alive stickiness).

Algorithm-agnostic: nothing here depends on the model; k-means is served. Runs with nginx in front when
nginx is installed (the images and ``make test`` install it), and once with gunicorn alone.
"""

import shutil
import socket
import statistics
import time

import numpy as np
import psutil
import pytest
import requests

from common import ndarray
from emulator import serve

CENTROIDS = np.random.default_rng(0).normal(size=(5, 20)).astype(np.float32)
CLIENT_TIMEOUT = 3
NGINX = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")


@pytest.fixture
def model_root(tmp_path):
    (tmp_path / "model").mkdir()
    ndarray.save(tmp_path / "model" / "model_algo-1", [CENTROIDS])
    return tmp_path


def stall(port, count):
    """Half of them stop inside the headers, half inside a body they announced."""
    sockets = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Le")
        else:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                      b"Content-Length: 100000\r\n\r\n1,2,3\n")
        sockets.append(s)
    return sockets


def ping_ms(url):
    start = time.perf_counter()
    assert requests.get(url + "/ping", timeout=5).status_code == 200
    return (time.perf_counter() - start) * 1000


def closed_within(sockets, seconds):
    """How many of the sockets the server closed (EOF or reset) within ``seconds``."""
    deadline = time.monotonic() + seconds
    closed = 0
    for s in sockets:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            while s.recv(65536):
                pass
            closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except OSError:  # timed out: still open
            pass
        finally:
            s.close()
    return closed


@pytest.mark.parametrize("front", [pytest.param("nginx", marks=pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (make install / .ci/run install it)")), "gunicorn"])
def test_stalled_connections_do_not_block_ping_and_are_closed(model_root, front):
    env = {"ALGOBOX_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT), "ALGOBOX_NGINX": "auto" if front == "nginx" else "off"}
    with serve("kmeans", model_root, env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        count = 100 if front == "nginx" else 6  # gunicorn alone has 2 x 4 threads: fewer than that stall
        sockets = stall(port, count)
        time.sleep(0.5)
        pings = [ping_ms(server.url) for _ in range(10)]
        assert statistics.median(pings) < 100, pings
        assert server.post(b"1," * 19 + b"1", "text/csv").status_code == 200
        started = time.monotonic()
        closed = closed_within(sockets, CLIENT_TIMEOUT + 10)
        print(f"{front}: {count} stalled, /ping median {statistics.median(pings):.1f} ms, max {max(pings):.1f} ms; "
              f"{closed} closed within {time.monotonic() - started + 0.5:.1f} s of stalling")
        assert closed == count
    assert ("nginx /" in server.output) == (front == "nginx"), server.output


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_keep_alive_clients_spread_over_workers(model_root):
    body = ("\n".join(",".join(["1.5"] * 20) for _ in range(2000))).encode()
    with serve("kmeans", model_root) as server:
        master = psutil.Process(server.process.pid)
        deadline = time.monotonic() + 60  # /ping answers once one worker is up; the second may still be loading
        while True:
            workers = [p for p in master.children() if "nginx" not in " ".join(p.cmdline())]
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(workers) == 2, [p.cmdline() for p in master.children()]
        before = [sum(w.cpu_times()[:2]) for w in workers]
        sessions = [requests.Session() for _ in range(2)]
        for _ in range(60):
            for session in sessions:
                answer = session.post(server.url + "/invocations", data=body, headers={"Content-Type": "text/csv"},
                                      timeout=30)
                assert answer.status_code == 200
        used = [sum(w.cpu_times()[:2]) - b for w, b in zip(workers, before)]
        print(f"worker CPU seconds over 120 keep-alive requests: {used}")
        assert min(used) > 0.2 * sum(used), used  # gunicorn alone: one worker took ~all of it


def test_payload_limit_and_errors_are_json_in_front(model_root):
    with serve("kmeans", model_root, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}) as server:
        answer = server.post(b"1" * (2 << 20), "text/csv")
        assert answer.status_code == 413
        assert "MaxPayloadInMB" in answer.json()["error"]
