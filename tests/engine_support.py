"""A second Docker engine owned by one test, and a small filesystem for another.

The machine's own dockerd is shared with other developers' test runs, so faults are
made on an engine of the test's own: its own data root, exec root, socket, pid file,
containerd (dockerd starts one in its exec root) and bridge (docker0 belongs to the main
engine; with no bridge at all BuildKit cannot run a ``RUN`` step). It is stopped and
removed, with its mounts, data and bridge, whatever happened in the test.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from tests.export_support import write_context


def _mounts_under(path: str) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    points = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == path or point.startswith(path.rstrip("/") + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount_all(path: str) -> None:
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True)


def pids_mentioning(root: str) -> list[int]:
    """Processes started for the engine whose data lives in ``root`` (its dockerd,
    containerd, shims): found by that root in their command line, never by a program's
    name."""
    marker, pids = root.encode(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker in f.read():
                    pids.append(int(pid))
        except OSError:
            pass
    return [p for p in pids if p != os.getpid()]


def file_tail(path: str, lines: int) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _free_subnet() -> str:
    """A /24 in 10.0.0.0/8 that no route of this machine uses: ``10.a.b``."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = f"10.{random.randint(100, 250)}.{random.randint(0, 255)}"
        if f"{prefix}." not in routes and "10.0.0.0/8" not in routes:
            return prefix
    raise RuntimeError("no free 10.x.y.0/24 for the test engine's bridge")


class SecondEngine:
    """``dockerd`` on ``unix://<root>/docker.sock``; ``host`` is its DOCKER_HOST."""

    def __init__(self):
        # short paths: unix socket paths (ours and containerd's) are limited to 107 bytes
        self.root = tempfile.mkdtemp(prefix="rees-engine-", dir="/tmp")
        self.socket = os.path.join(self.root, "docker.sock")
        self.host = f"unix://{self.socket}"
        self.pidfile = os.path.join(self.root, "docker.pid")
        self.log_path = os.path.join(self.root, "dockerd.log")
        self.bridge = f"reesbr{uuid.uuid4().hex[:8]}"  # at most 15 characters
        self.proc: subprocess.Popen | None = None
        with open(os.path.join(self.root, "daemon.json"), "w") as f:
            f.write("{}\n")  # not /etc/docker/daemon.json, which is the main engine's
        prefix = _free_subnet()
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{prefix}.1/24", "dev", self.bridge],
                       check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)

    @property
    def env(self) -> dict:
        return dict(os.environ, DOCKER_HOST=self.host)

    def docker(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, check=check,
                              capture_output=True, text=True, **kwargs)

    def running(self) -> bool:
        return self.docker("info", check=False).returncode == 0

    def start(self, timeout: float = 60) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", os.path.join(self.root, "daemon.json"),
             "--data-root", os.path.join(self.root, "data"),
             "--exec-root", os.path.join(self.root, "exec"),
             "--pidfile", self.pidfile, "-H", self.host,
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false",
             "--ip6tables=false"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.running():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test's dockerd did not start:\n" + self.log_tail())
            time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM dockerd (as ``systemctl restart docker`` does) and wait for it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def load(self, image: str) -> None:
        """Copy ``image`` from the machine's engine into this one."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        loaded = subprocess.run(["docker", "load", "-q"], stdin=save.stdout, env=self.env,
                                capture_output=True, text=True)
        save.stdout.close()
        assert save.wait() == 0 and loaded.returncode == 0, loaded.stderr

    def build(self, tag: str, dockerfile: str, files: dict[str, bytes]) -> str:
        with tempfile.TemporaryDirectory() as ctx:
            write_context(ctx, dockerfile, files)
            self.docker("build", "-q", "-t", tag, ctx)
        return tag

    def has_image(self, ref: str) -> bool:
        return self.docker("image", "inspect", ref, check=False).returncode == 0

    def log_tail(self, lines: int = 40) -> str:
        return file_tail(self.log_path, lines)

    def close(self, keep_log: str | None = None) -> None:
        """Stop the engine and remove everything it had: processes, mounts, data, bridge
        (its log is copied to ``keep_log`` first, if given)."""
        try:
            self.stop()
        finally:
            if keep_log and os.path.exists(self.log_path):
                shutil.copyfile(self.log_path, keep_log)
            for pid in pids_mentioning(self.root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            unmount_all(self.root)
            shutil.rmtree(self.root, ignore_errors=True)
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def _libraries(program: str) -> set[str]:
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    return {w for w in out.split() if w.startswith("/")}


def tools_files() -> dict[str, bytes]:
    """``sleep`` and ``seq`` from the host, for builds that take time or print a lot
    (dash, the tiny image's shell, has neither; the C library they need is there)."""
    files = {}
    for tool in ("sleep", "seq"):
        path = shutil.which(tool)
        assert _libraries(path) <= _libraries("/bin/dash"), f"{path} needs more libraries"
        with open(path, "rb") as f:
            files[f"/bin/{tool}"] = f.read()
    return files


class SmallFilesystem:
    """A tmpfs of ``size`` bytes mounted on ``path`` (over what is there, until closed)."""

    def __init__(self, path: str, size: int):
        self.path = path
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                        "rees-test-logs", path], check=True)

    def resize(self, size: int) -> None:
        """Give it more room (or less), keeping its files: space is back."""
        subprocess.run(["mount", "-o", f"remount,size={size}", self.path], check=True)

    def close(self) -> None:
        unmount_all(self.path)
