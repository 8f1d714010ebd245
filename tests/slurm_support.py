"""A real single-node Slurm cluster on this machine, for the HPC launch target's tests.

Debian's own ``munged``, ``slurmctld`` and ``slurmd`` (installed by scripts/setup-host.sh,
their services never started) run from a generated ``slurm.conf`` in a folder of their
own: a munge key and socket of their own, free ports, process tracking by
``proctrack/linuxproc`` and no cgroups (this VM has no cgroup delegation for them).
``SlurmCluster.stop`` stops every daemon it started, by pid, also after a failed start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

CLUSTER_NAME = "rees-slurm"
PARTITION = "rees-slurm-debug"
DAEMONS = ("munged", "slurmctld", "slurmd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_memory_mb() -> int:
    """What the node offers Slurm: the machine's memory less 2 GiB for the rest."""
    with open("/proc/meminfo") as f:
        total_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    return max(512, total_kb // 1024 - 2048)


SLURM_CONF = """\
ClusterName={name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=5
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory} State=UNKNOWN
PartitionName={partition} Nodes={host} Default=YES MaxTime=60 State=UP
"""


class SlurmCluster:
    """``start()`` brings the three daemons up and waits until ``sinfo`` shows the node
    idle; ``stop()`` ends them. ``env`` is what Slurm's commands need (``SLURM_CONF``)."""

    def __init__(self):
        self.root = tempfile.mkdtemp(prefix="rees-slurm-")
        os.chmod(self.root, 0o755)  # the job's user reaches the munge socket and the conf
        self.host = socket.gethostname().split(".")[0]
        self.conf = os.path.join(self.root, "slurm.conf")
        self.munge_socket = os.path.join(self.root, "munge", "munge.socket.2")
        self.env = {**os.environ, "SLURM_CONF": self.conf}
        self.procs: dict[str, subprocess.Popen] = {}

    def _write_files(self) -> None:
        for sub in ("state", "spool", "run", "log", "munge"):
            os.makedirs(os.path.join(self.root, sub), mode=0o755)
        key = os.path.join(self.root, "munge.key")
        with open(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            f.write(os.urandom(1024))
        with open(self.conf, "w") as f:
            f.write(SLURM_CONF.format(
                name=CLUSTER_NAME, host=self.host, ctld_port=free_port(),
                slurmd_port=free_port(), munge_socket=self.munge_socket, root=self.root,
                cpus=os.cpu_count() or 1, memory=node_memory_mb(), partition=PARTITION))
        os.chmod(self.conf, 0o644)

    def start(self) -> SlurmCluster:
        for tool in DAEMONS + ("sinfo", "sbatch", "squeue", "scancel"):
            if not shutil.which(tool):
                raise RuntimeError(f"{tool} is not installed; run scripts/setup-host.sh")
        self._write_files()
        try:
            self._start_munge()
            self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", self.conf])
            self._start("slurmd", ["slurmd", "-D", "-N", self.host, "-f", self.conf])
            self.wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        log = os.path.join(self.root, "log", "munged.log")
        self._start("munged", [
            "munged", "-F", "--force", f"--socket={self.munge_socket}",
            f"--key-file={os.path.join(self.root, 'munge.key')}", f"--log-file={log}",
            f"--pid-file={os.path.join(self.root, 'run', 'munged.pid')}",
            f"--seed-file={os.path.join(self.root, 'munge', 'seed')}"])
        self._until(lambda: os.path.exists(self.munge_socket), "munged made its socket")
        os.chmod(os.path.dirname(self.munge_socket), 0o755)

    def _start(self, name: str, args: list[str]) -> None:
        out = open(os.path.join(self.root, "log", f"{name}.out"), "wb")
        # the marker lets stop() find the job steps slurmd leaves behind
        env = {**self.env, "REES_SLURM_ROOT": self.root}
        self.procs[name] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)
        out.close()

    def _until(self, check, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}) before {what}:\n"
                                       + self.logs())
            if check():
                return
            time.sleep(0.2)
        raise TimeoutError(f"not within {timeout}s: {what}\n" + self.logs())

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True,
                              timeout=30)
        if check and done.returncode:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def wait_idle(self) -> None:
        def idle() -> bool:
            out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
            return f"{self.host} idle" in out
        self._until(idle, f"sinfo shows {self.host} idle")

    def jobs(self, user: str | None = None) -> list[str]:
        """Lines ``id state reason`` of the jobs squeue lists (of ``user``)."""
        args = ["squeue", "-h", "-o", "%i %T %r"] + (["-u", user] if user else [])
        return [line for line in self.run(*args).splitlines() if line.strip()]

    def logs(self) -> str:
        parts = []
        folder = os.path.join(self.root, "log")
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            with open(os.path.join(folder, name), errors="replace") as f:
                parts.append(f"--- {name}\n{f.read()[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM each daemon, slurmd first; SIGKILL any still running after 15 s."""
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self._kill_job_steps()
        shutil.rmtree(self.root, ignore_errors=True)

    def _kill_job_steps(self) -> None:
        """A job's slurmstepd may outlive slurmd: end those of this cluster (their
        environment carries its marker)."""
        marker = f"REES_SLURM_ROOT={self.root}".encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                continue
            if cmd.startswith("slurmstepd") and marker in env:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
