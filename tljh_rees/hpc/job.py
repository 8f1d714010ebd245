"""The Slurm job that runs ``jupyterhub-singleuser`` inside an environment's image.

batchspawner's ``SlurmSpawner`` is used for what it does well, the Slurm commands
(``sbatch --parsable``, ``squeue``, ``scancel``, run as the job's unix user) and the
parsing of their answers; :class:`SlurmJob` gives it the rees job script and the
container command. Inside the image there is no batchspawner: a few lines of the
image's own Python (:data:`LAUNCHER`, standard library only) pick a free port on the
node, tell the Hub (batchspawner's ``/hub/api/batchspawner``, authenticated with the
server's own token, which travels only in the job's environment) and start the server.
"""

from __future__ import annotations

import os
import re
import shlex

from batchspawner import SlurmSpawner
from batchspawner.batchspawner import format_template
from traitlets import Dict, Unicode, default

from .choice import ClusterRequest

LAUNCHER = """\
import json, os, socket, sys, urllib.parse, urllib.request
with socket.socket() as s:
    s.bind(("", 0))
    port = s.getsockname()[1]
api = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
request = urllib.request.Request(
    api + "/batchspawner", data=json.dumps({"port": port}).encode(), method="POST",
    headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"],
             "Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=60).read()
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
os.environ["JUPYTERHUB_SERVICE_URL"] = url._replace(netloc=f"{url.hostname}:{port}").geturl()
print(f"rees: the server listens on port {port}", flush=True)
os.execvp(sys.argv[1], sys.argv[1:])
"""

# Inside the image: its environment (the SIF's /.singularity.d/env scripts, which hold
# the image's ENV), then the user's cluster home, then the launcher.
IN_IMAGE = ('for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; '
            'export HOME="$REES_HOME"; cd "$HOME"; exec python3 -c "$REES_LAUNCHER" "$@"')

JOB_SCRIPT = """#!/bin/bash
#SBATCH --job-name={{job_name}}
#SBATCH --output={{homedir}}/.rees-slurm-%j.log
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
#SBATCH --partition={{partition}}
#SBATCH --time={{runtime}}
#SBATCH --cpus-per-task={{nprocs}}
#SBATCH --mem={{memory}}
{% if options %}#SBATCH {{options}}
{% endif %}
set -euo pipefail
echo "rees: job $SLURM_JOB_ID on $(hostname), image {{image}}"
export REES_LAUNCHER={{launcher}}
{{prologue}}
{{cmd}}
{{epilogue}}
"""

KEEP_ALWAYS = ("USER", "HOME", "LOGNAME", "PATH")


def container_command(runtime: str, image: str, args: list[str]) -> str:
    """The job's command line: the runtime runs ``args`` (jupyterhub-singleuser and its
    options) in ``image`` with the job user's home bound in."""
    if runtime == "apptainer":  # binds $HOME at its own path and sources the env itself
        prefix = ["apptainer", "exec", image]
        home = '"$HOME"'
    else:  # ch-run --home: the host's $HOME at /home/$USER
        prefix = ["ch-run", "--home", image, "--"]
        home = '"/home/$USER"'
    return (f"REES_HOME={home} exec {shlex.join(prefix)} /bin/sh -c {shlex.quote(IN_IMAGE)} "
            f"rees {shlex.join(args)}")


def job_name(user: str, server: str) -> str:
    return "rees-" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{user}-{server}" if server else user)


class SlurmJob(SlurmSpawner):
    """One cluster server's job. Configurable as batchspawner's ``SlurmSpawner`` (e.g.
    ``c.SlurmSpawner.req_account``, ``req_qos``, ``req_prologue`` for ``module load``)."""

    batch_script = Unicode(JOB_SCRIPT).tag(config=True)
    job_env = Dict(help="The server's environment (JUPYTERHUB_*), passed to sbatch only.")
    container_cmd = Unicode(help="What the job runs (container_command).")
    req_job_name = Unicode("rees")
    req_image = Unicode("")
    req_launcher = Unicode(shlex.quote(LAUNCHER))
    conf_prefix = ""  # "env SLURM_CONF=… " when rees.hpc.slurm_conf is set

    @default("exec_prefix")
    def _exec_prefix(self):
        # The Hub runs as root (TLJH): each user's jobs are submitted as that user.
        return "runuser -u {username} --" if os.geteuid() == 0 else ""

    @default("req_keepvars")
    def _keepvars(self):
        return ",".join(sorted(self.job_env) + list(KEEP_ALWAYS))

    def get_env(self):
        env = {k: os.environ[k] for k in ("PATH", "LANG") if k in os.environ}
        return {**env, **self.job_env}

    def cmd_formatted_for_batch(self):
        return self.container_cmd

    async def submit_batch_script(self):
        """As batchspawner's, without logging the environment (it holds the token)."""
        subvars = self.get_req_subvars()
        cmd = " ".join((format_template(self.exec_prefix, **subvars),
                        format_template(self.batch_submit_cmd, **subvars)))
        subvars["cmd"] = self.cmd_formatted_for_batch()
        script = await self._get_batch_script(**subvars)
        self.log.info("rees: submitting the job of %s: %s", self.req_username, cmd)
        self.job_id = self.parse_job_id(await self.run_command(cmd, input=script,
                                                               env=self.get_env()))
        return self.job_id

    def use_slurm_conf(self, path: str) -> None:
        """Run Slurm's commands with ``SLURM_CONF=path`` ('' for Slurm's default)."""
        if not path:
            return
        self.conf_prefix = f"env SLURM_CONF={shlex.quote(path)} "
        for trait in ("batch_submit_cmd", "batch_query_cmd", "batch_cancel_cmd"):
            setattr(self, trait, self.conf_prefix + getattr(self, trait))

    def ask(self, request: ClusterRequest) -> None:
        self.req_partition, self.req_runtime = request.partition, request.slurm_time
        self.req_nprocs, self.req_memory = str(request.cpus), request.slurm_memory

    async def reason(self) -> str:
        """Why a pending job waits, and its place among the partition's pending jobs."""
        out = await self._slurm(f"squeue -h -j {self.job_id} -o '%r %P'")
        reason, _, partition = out.strip().partition(" ")
        queue = await self._slurm(f"squeue -h -t PENDING -p {shlex.quote(partition)} "
                                  "--sort=-p,i -o %i") if partition else ""
        ids = queue.split()
        place = f"position {ids.index(self.job_id) + 1} of {len(ids)}" if self.job_id in ids \
            else "position unknown"
        return f"{reason or 'unknown reason'}, {place}"

    async def _slurm(self, command: str) -> str:
        prefix = self.exec_prefix.format(username=self.req_username)
        try:
            return await self.run_command(f"{prefix} {self.conf_prefix}{command}")
        except RuntimeError as e:
            return str(e)

    async def log_tail(self, lines: int = 15) -> str:
        """The end of the job's output file (in the user's home), read as the user."""
        path = shlex.quote(f"{self.req_homedir}/.rees-slurm-{self.job_id}.log")
        prefix = self.exec_prefix.format(username=self.req_username)
        try:
            return await self.run_command(f"{prefix} tail -n {lines} {path}")
        except RuntimeError:
            return ""
