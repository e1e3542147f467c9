"""A `docker` command for the SageMaker Python SDK's local mode, over podman and podman-compose.

Test tooling only (tests/containers/test_sdk_local_mode.py puts it first on PATH); nothing of it is in
the images. Local mode shells out to `docker compose`, `docker info`, `docker context inspect` and
`docker images`; podman answers most of it, and this bridges what podman-compose 1.0.3 (Debian
bookworm) lacks next to Docker Compose v2:

- `docker compose version`: the SDK uses `docker compose` only when the answer says v2.
- `docker context inspect`: the SDK reads the endpoint host from it on every request (podman has no
  contexts); the answer names podman's socket, so the SDK talks to localhost.
- the `networks:` mapping form (`networks: {sagemaker-local: {aliases: [algo-1-xxxxx]}}`), which
  podman-compose reads as one network named "sagemaker-local={...}": rewritten to the list form. The
  alias the SDK asks for is the service name, which podman-compose gives every container
  (`--network-alias <service>`), resolved between containers by the CNI dnsname plugin.
- `up --abort-on-container-exit`: podman-compose exits with 255 as soon as one container ends and
  leaves the others running. Like Docker Compose, this stops the other containers when the first one
  exits and exits with that first container's exit code.
- SIGTERM / SIGINT (the SDK's `delete_endpoint` and the end of a transform job terminate the compose
  process): podman-compose leaves its containers running (and the serving port taken); this stops them
  (10 s, Docker Compose's default) and exits.
- port forwards left behind: a container that exits on its own is cleaned up by conmon's exit command,
  which does not see CONTAINERS_STORAGE_CONF, so its CNI port forward can outlive it; `podman rm` here,
  in this process's environment, tears the network down, so the next endpoint on the same port works.
- the exit seen at once: where that exit command fails (CONTAINERS_STORAGE_CONF names a driver that
  podman's own configuration leaves unset: "database configuration mismatch"), `podman wait` and
  `podman logs -f` return only after podman's 20 s conmon timeout. This process watches each container's
  process itself and runs `podman container cleanup` as soon as one ends.

Every other command goes to podman as is (`docker images -q IMAGE`, `docker pull`, ...).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

PODMAN = os.environ.get("ALGOBOX_SHIM_PODMAN", "podman")
PODMAN_COMPOSE = os.environ.get("ALGOBOX_SHIM_PODMAN_COMPOSE", "podman-compose")
STOP_TIMEOUT_S = 10  # Docker Compose's default
POLL_S = 0.5


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def podman(*args, check=False):
    return subprocess.run([PODMAN, *args], capture_output=True, text=True, check=check)


# ---- docker context inspect / compose version ----

def context_inspect():
    socket_path = "/run/podman/podman.sock" if os.geteuid() == 0 else \
        f"/run/user/{os.geteuid()}/podman/podman.sock"
    print(json.dumps([{"Name": "podman", "Metadata": {}, "Endpoints": {
        "docker": {"Host": f"unix://{socket_path}", "SkipTLSVerify": False}}}], indent=4))
    return 0


def compose_version():
    result = subprocess.run([PODMAN_COMPOSE, "version"], capture_output=True, text=True)
    under = next((line.split()[-1] for line in result.stdout.splitlines() if "podman-compose" in line
                  or "podman-composer" in line), "?")
    print(f"Docker Compose version v2.27.0 (algobox shim over podman-compose {under})")
    return 0


# ---- the compose file ----

def rewrite_compose_file(path):
    """The compose file with service networks in list form; returns (new path, project, container names)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        content = yaml.safe_load(f)
    names = []
    for service_name, service in content["services"].items():
        networks = service.get("networks")
        if isinstance(networks, dict):
            for network, options in networks.items():
                aliases = (options or {}).get("aliases") or []
                extra = [alias for alias in aliases if alias != service_name]
                if extra:  # podman-compose aliases only the service name
                    raise SystemExit(f"docker shim: aliases {extra} of service {service_name} are not "
                                     "supported (podman-compose gives each container its service name)")
            service["networks"] = list(networks)
        names.append((service_name, service.get("container_name") or service_name))
    directory = os.path.dirname(os.path.abspath(path))
    project = "".join(c for c in os.path.basename(directory).lower() if c.isalnum() or c in "-_") or "local"
    new_path = os.path.join(directory, "docker-compose.podman.yaml")
    with open(new_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(content, f, default_flow_style=False)
    return new_path, project, names


class Project:
    """The containers of one `compose up`, started by podman-compose, watched and stopped here."""

    def __init__(self, compose_file, project, services):
        self.compose_file = compose_file
        self.project = project
        self.services = dict((name, service) for service, name in services)  # container name -> service
        self.names = list(self.services)
        self.stopping = threading.Event()
        self.log_threads = []

    def compose(self, *args):
        return subprocess.run([PODMAN_COMPOSE, "-p", self.project, "-f", self.compose_file, *args],
                              capture_output=True, text=True)

    def start(self):
        result = self.compose("up", "-d")
        if result.returncode != 0 or not all(self.state(name) for name in self.names):
            say(result.stdout[-4000:] + result.stderr[-4000:])
            say(f"docker shim: podman-compose up -d failed (exit {result.returncode})")
            return False
        for name in self.names:
            thread = threading.Thread(target=self.stream_logs, args=(name,), daemon=True)
            thread.start()
            self.log_threads.append(thread)
        self.pids = {}
        for name in self.names:
            pid = podman("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
            self.pids[name] = int(pid) if pid.isdigit() else 0
        return True

    def any_process_ended(self):
        """Whether a container's process has ended, seen in /proc from here (no child process: see
        wait_first_exit); 0 is the pid of a container that had ended before it was asked for."""
        return any(not pid or not os.path.exists(f"/proc/{pid}") for pid in self.pids.values())

    def stream_logs(self, name):
        service = self.services[name]
        width = max(len(s) for s in self.services.values())
        process = subprocess.Popen([PODMAN, "logs", "-f", name], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in process.stdout:
            say(f"{service:<{width}}  | {line.rstrip()}")
        process.wait()

    def state(self, name):
        """(status, exit code) of a container, or None when it does not exist (or podman was interrupted)."""
        result = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
        if result.returncode != 0:
            return None
        status, code = result.stdout.split()
        return status, int(code)

    def exited(self):
        done = {}
        for name in self.names:
            state = self.state(name)
            if state and state[0] in ("exited", "stopped"):
                done[name] = state[1]
        return done

    def wait_first_exit(self):
        """One long-lived ``podman wait`` child per container, no polling: the SDK's ``delete_endpoint`` lists this
        process's children (pgrep) and then signals each, and raises if one has exited in between (a short-lived
        ``podman inspect`` every half second often had, under load)."""
        exits = queue.Queue()

        def wait(name):
            result = subprocess.run([PODMAN, "wait", name], capture_output=True, text=True)
            if result.returncode == 0:  # killed by a signal (the SDK stops every child first) is not an exit
                exits.put(name)

        for name in self.names:
            threading.Thread(target=wait, args=(name,), daemon=True).start()
        while not self.stopping.is_set():
            try:
                exits.get(timeout=POLL_S)
            except queue.Empty:
                if not self.any_process_ended():
                    continue
            done = self.exited()
            if done:
                podman("container", "cleanup", *done)  # at once, in this environment (module docstring)
                return done
        return {}

    def stop_and_remove(self):
        running = [name for name in self.names if (self.state(name) or ("gone",))[0] not in ("exited", "gone")]
        if running:
            podman("stop", "--time", str(STOP_TIMEOUT_S), *running)
        for thread in self.log_threads:
            thread.join(timeout=5)
        codes = {name: (self.state(name) or (None, None))[1] for name in self.names}
        podman("rm", "--force", *self.names)
        return codes


def compose_up(compose_file, detach):
    new_file, project_name, services = rewrite_compose_file(compose_file)
    project = Project(new_file, project_name, services)

    def on_signal(signum, frame):
        project.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not project.start():
        project.stop_and_remove()
        return 1
    if detach:
        return 0
    first = project.wait_first_exit()
    if first:
        name, code = next(iter(first.items()))
        say(f"{name} exited with code {code}")
        if len(services) > 1:
            say("Aborting on container exit...")
    else:
        say("Gracefully stopping... (press Ctrl+C again to force)")
    codes = project.stop_and_remove()
    for name, code in codes.items():
        say(f"docker shim: {name} exit code {code}")
    if not first:  # stopped by a signal: the containers' own exit codes (0 when they stop cleanly)
        return max((code or 0) for code in codes.values())
    return next(iter(first.values()))


def compose(args):
    compose_file = None
    rest = []
    i = 0
    while i < len(args):
        if args[i] in ("-f", "--file"):
            compose_file = args[i + 1]
            i += 2
            continue
        rest.append(args[i])
        i += 1
    if rest[:1] == ["version"]:
        return compose_version()
    if rest[:1] == ["up"] and compose_file:
        return compose_up(compose_file, detach="--detach" in rest or "-d" in rest)
    if compose_file:
        compose_file, project_name, _ = rewrite_compose_file(compose_file)
        return subprocess.call([PODMAN_COMPOSE, "-p", project_name, "-f", compose_file, *rest])
    return subprocess.call([PODMAN_COMPOSE, *rest])


def main(argv):
    if argv[:1] == ["compose"]:
        return compose(argv[1:])
    if argv[:2] == ["context", "inspect"]:
        return context_inspect()
    os.execvp(PODMAN, [PODMAN, *argv])
    return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
