"""A real multi-node Docker Swarm on one machine, owned by one test session.

The machine's own dockerd becomes the manager (as the Hub's machine is in production);
two more engines run as workers, each in a network namespace of its own with its own data
root, exec root, socket, pid file and containerd, reached over a bridge this module
creates. Everything is named ``rees-swarm*`` and removed in ``close()`` whatever
happened: the workers' engines and files, the swarm (``docker swarm leave --force`` on
the main engine, which keeps its ordinary containers and networks), the namespaces, the
bridge, the firewall rule, and the ``docker_gwbridge`` network if the swarm made it.
Nothing else on the shared engine is touched.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from tests.engine_support import _free_subnet, file_tail, pids_mentioning, unmount_all

PREFIX = "rees-swarm"
# one swarm per machine (the main engine is its manager): a second test run waits here
LOCK_FILE = f"/run/lock/{PREFIX}.lock"
BRIDGE = f"{PREFIX}-br"  # interface names: at most 15 characters
# bridged traffic between the namespaces goes through the host's FORWARD chain
# (br_netfilter), whose policy the main engine sets to DROP
FORWARD_RULE = ["DOCKER-USER", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT"]


def run(*cmd: str, check: bool = True, env: dict | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess:
    done = subprocess.run(list(cmd), capture_output=True, text=True, env=env,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip() or done.stdout}")
    return done


def swarm_state(env: dict | None = None) -> str:
    return run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}", env=env,
               check=False).stdout.strip()


class Worker:
    """``dockerd`` in network namespace ``rees-swarm-<name>`` at ``address``."""

    def __init__(self, name: str, address: str, gateway: str, root: str):
        self.name, self.address = name, address
        self.netns = f"{PREFIX}-{name}"
        self.root = os.path.join(root, name)  # short: unix socket paths are limited
        os.makedirs(self.root)
        self.socket = os.path.join(self.root, "docker.sock")
        # its CLI's own config too: a login there must not land in root's ~/.docker
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.socket}",
                        DOCKER_CONFIG=os.path.join(self.root, "cli"))
        self.log_path = os.path.join(self.root, "dockerd.log")
        self.proc: subprocess.Popen | None = None
        host_end, inner = f"{PREFIX}-{name}h", f"{PREFIX}-{name}n"
        run("ip", "netns", "add", self.netns)
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner)
        run("ip", "link", "set", host_end, "master", BRIDGE, "up")
        run("ip", "link", "set", inner, "netns", self.netns)
        ns = ("ip", "netns", "exec", self.netns)
        run(*ns, "ip", "link", "set", inner, "name", "eth0")
        run(*ns, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        run(*ns, "ip", "link", "set", "eth0", "up")
        run(*ns, "ip", "link", "set", "lo", "up")
        run(*ns, "ip", "route", "add", "default", "via", gateway)
        with open(os.path.join(self.root, "daemon.json"), "w") as f:
            json.dump({}, f)  # not /etc/docker/daemon.json, which is the main engine's

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run("docker", *args, env=self.env, check=check)

    def running(self) -> bool:
        return self.docker("info", check=False).returncode == 0

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            # its own network namespace, and a host name of its own (nodes show it)
            ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--uts",
             "sh", "-c", 'hostname "$0" && exec "$@"', self.netns, "dockerd",
             "--config-file", os.path.join(self.root, "daemon.json"),
             "--data-root", os.path.join(self.root, "data"),
             "--exec-root", os.path.join(self.root, "exec"),
             "--pidfile", os.path.join(self.root, "docker.pid"),
             "--cgroup-parent", self.netns, "-H", self.env["DOCKER_HOST"]],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.running():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name}'s dockerd did not start:\n"
                                   + self.log_tail())
            time.sleep(0.3)

    def kill(self) -> None:
        """A machine that dies: dockerd and everything it started, at once (its
        containers' processes too: killing the shims alone leaves those running)."""
        kill_all(pids_mentioning(self.root) + cgroup_pids(self.netns))
        if self.proc is not None:
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        return file_tail(self.log_path, lines)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        unmount_all(self.root)
        shutil.rmtree(self.root, ignore_errors=True)
        run("ip", "netns", "del", self.netns, check=False)
        run("ip", "link", "del", f"{PREFIX}-{self.name}h", check=False)


class SwarmLab:
    """The main engine as manager at ``manager_address`` and ``workers``."""

    def __init__(self, workers: int = 2):
        os.makedirs(os.path.dirname(LOCK_FILE), exist_ok=True)
        self._lock = open(LOCK_FILE, "w")
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # released by close(), or when we exit
        self.root = tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/tmp")
        self.workers: list[Worker] = []
        self.made_gwbridge = False
        self.swarm_made = False
        try:
            self._bridge()
            self._swarm()
            for i in range(workers):
                self.add_worker(f"w{i + 1}")
        except BaseException:
            self.close()
            raise

    def _bridge(self) -> None:
        remove_leftovers()
        prefix = _free_subnet()
        self.subnet = f"{prefix}.0/24"
        self.manager_address = f"{prefix}.1"
        self._next_host = 11
        run("ip", "link", "add", BRIDGE, "type", "bridge")
        run("ip", "addr", "add", f"{self.manager_address}/24", "dev", BRIDGE)
        run("ip", "link", "set", BRIDGE, "up")
        run("iptables", "-I", *FORWARD_RULE)

    def _swarm(self) -> None:
        state = swarm_state()
        if state != "inactive":
            raise RuntimeError(f"the main engine is already in a swarm ({state}); the "
                               "tests make their own and will not join another one")
        self.made_gwbridge = run("docker", "network", "inspect", "docker_gwbridge",
                                 check=False).returncode != 0
        run("docker", "swarm", "init", "--advertise-addr", self.manager_address,
            "--listen-addr", f"{self.manager_address}:2377", "--dispatcher-heartbeat", "2s")
        self.swarm_made = True
        self.manager_id = run("docker", "info", "--format",
                              "{{.Swarm.NodeID}}").stdout.strip()
        self.token = run("docker", "swarm", "join-token", "-q", "worker").stdout.strip()

    def add_worker(self, name: str, join: bool = True) -> Worker:
        address = f"{self.subnet.rsplit('.', 1)[0]}.{self._next_host}"
        self._next_host += 1
        worker = Worker(name, address, self.manager_address, self.root)
        self.workers.append(worker)
        worker.start()
        if join:
            worker.docker("swarm", "join", "--token", self.token,
                          "--advertise-addr", address, f"{self.manager_address}:2377")
            worker.node_id = worker.docker("info", "--format",
                                           "{{.Swarm.NodeID}}").stdout.strip()
        return worker

    def node_state(self, node_id: str) -> str:
        return run("docker", "node", "inspect", node_id, "--format",
                   "{{.Status.State}}").stdout.strip()

    def label(self, node_id: str, key: str, value: str) -> None:
        run("docker", "node", "update", "--label-add", f"{key}={value}", node_id)

    def close(self) -> None:
        """Remove everything this lab made, each step on its own, also after a failure."""
        steps = [lambda w=w: w.close() for w in self.workers]
        if self.swarm_made:
            steps.append(lambda: run("docker", "swarm", "leave", "--force", timeout=60))
        if self.made_gwbridge:
            steps.append(lambda: run("docker", "network", "rm", "docker_gwbridge",
                                     check=False))
        steps.append(remove_leftovers)
        steps.append(lambda: shutil.rmtree(self.root, ignore_errors=True))
        errors = []
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 (every step runs; errors are reported)
                errors.append(str(e))
        left = [pid for w in self.workers for pid in cgroup_pids(w.netns)]
        if left:
            errors.append(f"processes left running in the workers' cgroups: {left}")
        self._lock.close()  # the next run may make its swarm
        if errors:
            raise RuntimeError("swarm teardown: " + "; ".join(errors))


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def cgroup_pids(parent: str) -> list[int]:
    """Processes in the cgroup ``parent`` and below, in every hierarchy: a worker's
    containers, which its dockerd starts under ``--cgroup-parent``."""
    pids = set()
    for hierarchy in glob.glob("/sys/fs/cgroup/*/"):
        for folder, _, files in os.walk(os.path.join(hierarchy, parent)):
            if "cgroup.procs" in files:
                try:
                    with open(os.path.join(folder, "cgroup.procs")) as f:
                        pids.update(int(p) for p in f.read().split())
                except OSError:
                    pass
    return sorted(pids)


def remove_leftovers() -> None:
    """What a killed earlier run left: this module's containers' processes, bridge, rule
    and namespaces only."""
    for parent in {os.path.basename(p.rstrip("/"))
                   for p in glob.glob(f"/sys/fs/cgroup/*/{PREFIX}-*/")}:
        kill_all(cgroup_pids(parent))
    for ns in run("ip", "netns", "list", check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if name.startswith(f"{PREFIX}-"):
            run("ip", "netns", "del", name, check=False)
    run("ip", "link", "del", BRIDGE, check=False)
    while run("iptables", "-D", *FORWARD_RULE, check=False).returncode == 0:
        pass
