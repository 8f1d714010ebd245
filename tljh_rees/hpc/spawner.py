"""HpcReesSpawner: ReesSpawner that can also run a server as a Slurm job.

The Hub has one spawner class. A start whose ``user_options`` say ``target: cluster``
(the spawn form's choice, or the Hub's API) takes the cluster path here; anything else is
ReesSpawner's own start on this machine, unchanged. Both ask the catalog the same
question (``ReesSpawner._choose`` → ``Catalog.launch_plan``), so who may launch what is
decided once. The cluster path: check the request against ``rees.hpc``
(``choice.cluster_request``), find (or make) the user's unix account, stage the image
for the nodes' runtime (``staging.ImageStager``), submit the job (``job.SlurmJob``),
follow it through the queue (cancelled, with Slurm's reason, past
``rees.hpc.queue_timeout``) and wait for the server's port. ``poll``, ``stop`` and the
saved state go to the job while it is a cluster server, so a job that ends (walltime,
node lost) is a server gone for the Hub.
"""

from __future__ import annotations

import asyncio
import html
import pwd
import subprocess
import time

from jupyterhub.spawner import Spawner
from traitlets import Dict

from ..errors import ReesError
from ..spawner import ReesSpawner, hub_error
from .choice import CLUSTER, FIELDS, LOCAL, ClusterRequest, cluster_request
from .job import SlurmJob, container_command, job_name
from .settings import HpcSettings, format_walltime
from .staging import ImageStager

# Reasons Slurm gives for a pending job that waiting will not cure: cancelled at once.
HOPELESS = {
    "PartitionConfig": "the partition's nodes do not have the CPUs or memory asked for",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionTimeLimit": "a walltime longer than the partition allows",
    "BadConstraints": "no node has what the job asks for",
    "InvalidAccount": "the job's account is not valid",
    "InvalidQOS": "the job's QOS is not valid",
}


class HpcReesSpawner(ReesSpawner):
    hpc = Dict(config=True, help="The Slurm target (rees.hpc; HpcSettings.to_dict).")

    target = LOCAL
    job: SlurmJob | None = None
    local_address: tuple = ("0.0.0.0", 8888)  # DockerSpawner's ip and port, kept aside

    @property
    def settings(self) -> HpcSettings:
        return HpcSettings.from_dict(self.hpc)

    # -- choosing -------------------------------------------------------------------------

    def check_options(self, options: dict) -> None:
        """The cluster fields are checked by ``cluster_request``; the rest by ReesSpawner."""
        super().check_options({k: v for k, v in options.items() if k not in FIELDS})

    def options_from_form(self, formdata):
        options = super().options_from_form(formdata)
        if options.get("target") != CLUSTER:  # the form always sends the cluster fields
            options = {k: v for k, v in options.items() if k not in FIELDS}
        return options

    async def options_form(self, spawner=None):
        form = await super().options_form(spawner)
        if not self.settings.enabled or "rees-environments" not in form:
            return form
        return form + cluster_fieldset(self.settings)

    # -- starting -------------------------------------------------------------------------

    async def start(self):
        try:
            request = cluster_request(dict(self.user_options or {}), self.settings)
        except ReesError as e:
            raise hub_error(e.status, str(e)) from None
        if request is None:
            self.target = LOCAL
            return await super().start()
        await self._choose()
        if self.service_specs:
            raise hub_error(400, "Add-on services run only on this machine; start this "
                                 "environment with target 'this-machine'.")
        self.target, self.progress_notes = CLUSTER, []
        account = await asyncio.to_thread(self._unix_account)
        staged = await self._stage()
        self.job = job = self._new_job(account)
        job.ask(request)
        job.req_image = staged.path
        job.container_cmd = container_command(self.settings.runtime, staged.path,
                                              [*self.cmd, *self.get_args()])
        try:
            return await self._run(request)
        except BaseException:
            if job.job_id:  # a stop meanwhile may have cleared self.job
                await job.cancel_batch_job()
            raise

    def _unix_account(self) -> pwd.struct_passwd:
        """The user's unix account (``rees.hpc.unix_user``); made with ``useradd`` as TLJH
        makes its users when ``rees.hpc.create_users`` is on (a one-machine cluster)."""
        name = self.settings.unix_name(self.user.name)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            if not self.settings.create_users:
                raise hub_error(409, f"There is no unix user {name!r} for you on the "
                                     "cluster's submit host; ask an admin to create it "
                                     "(rees.hpc.unix_user maps Hub users to unix users).")
        done = subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name],
                              capture_output=True, text=True)
        if done.returncode not in (0, 9):  # 9: made meanwhile by another start
            raise hub_error(500, f"Could not create the unix user {name!r}: "
                                 f"{done.stderr.strip()}")
        return pwd.getpwnam(name)

    async def _stage(self):
        settings = self.settings
        stager = ImageStager(settings.image_dir, settings.runtime, settings.charliecloud_format)
        started = time.monotonic()
        image_id = self.image if self.image.startswith("sha256:") else (
            await self._inspect(self.image))["Id"]  # the admin's default image, by name
        try:
            staged = await asyncio.to_thread(stager.stage, self.client, image_id,
                                             self.note_progress)
        except Exception as e:
            raise hub_error(500, f"Could not prepare the image for the cluster: {e}") from None
        how = "reused" if staged.cached else f"made in {time.monotonic() - started:.0f}s"
        self.note_progress(f"Image for {settings.runtime} ready ({how}): {staged.path}")
        return staged

    def _new_job(self, account: pwd.struct_passwd) -> SlurmJob:
        job = SlurmJob(parent=self, config=self.config, log=self.log, user=self.user,
                       hub=self.hub, req_username=account.pw_name,
                       req_homedir=account.pw_dir,
                       req_job_name=job_name(self.user.name, self.name))
        job.use_slurm_conf(self.settings.slurm_conf)
        return job

    def _job_env(self) -> dict:
        """The server's own environment (its token, the Hub's URLs), and nothing of the
        Hub's process (its PATH, PYTHONPATH or virtualenv mean nothing in the image)."""
        self.local_address = (self.ip, self.port)
        self.ip, self.port = "0.0.0.0", 0
        env = {k: v for k, v in Spawner.get_env(self).items()
               if k.startswith(("JUPYTERHUB_", "JPY_"))}
        if self.binder_server:
            env["JUPYTERHUB_ALLOW_TOKEN_IN_URL"] = "1"
        return env

    async def _run(self, request: ClusterRequest) -> tuple[str, int]:
        job = self.job
        job.job_env = self._job_env()
        try:
            await job.submit_batch_script()
        except Exception as e:
            raise hub_error(400, f"Slurm refused the job ({request.partition}, "
                                 f"{request.cpus} CPUs, {request.slurm_memory}, "
                                 f"{request.slurm_time}): {e}") from None
        self.note_progress(f"Submitted Slurm job {job.job_id} to partition "
                           f"{request.partition} ({request.cpus} CPUs, {request.slurm_memory}"
                           f", walltime {request.slurm_time})")
        host = await self._until_running()
        self.note_progress(f"Job {job.job_id} running on node {host}; starting the server")
        while not self.port:
            if await job.poll() is not None:
                raise hub_error(500, f"Slurm job {job.job_id} ended before its server "
                                     f"started:\n{await job.log_tail()}")
            await asyncio.sleep(0.5)
        self.poll_interval = self.settings.poll_interval
        return host, self.port

    async def _until_running(self) -> str:
        """The node of the job once it runs; cancelled, with Slurm's reason, if it waits
        in the queue longer than ``rees.hpc.queue_timeout``."""
        from batchspawner.batchspawner import JobStatus

        job, timeout = self.job, self.settings.queue_timeout
        deadline, said = time.monotonic() + timeout, ""
        while True:
            status = await job.query_job_status()
            if status == JobStatus.RUNNING:
                return job.state_gethost()
            if status == JobStatus.NOTFOUND:
                tail = await job.log_tail()
                raise hub_error(500, f"Slurm job {job.job_id} ended before it ran.\n{tail}")
            if status == JobStatus.PENDING:
                reason = await job.reason()
                if reason != said:
                    self.note_progress(f"Queued: Slurm job {job.job_id}, {reason}")
                    said = reason
                code = reason.split(",")[0]
                if code in HOPELESS:
                    await job.cancel_batch_job()
                    raise hub_error(400, f"Slurm job {job.job_id} cannot run as asked "
                                         f"({code}: {HOPELESS[code]}); it was cancelled.")
                if time.monotonic() > deadline:
                    await job.cancel_batch_job()
                    raise hub_error(503, f"Slurm job {job.job_id} waited {timeout}s in the "
                                         f"queue ({reason}) and was cancelled; try a smaller "
                                         "request or another partition.")
            await asyncio.sleep(job.startup_poll_interval)

    # -- running, stopping, state ------------------------------------------------------

    async def poll(self):
        if self.target != CLUSTER:
            return await super().poll()
        if self.job is None or not self.job.job_id:
            return 1  # no job (its unix user gone since): not running
        return await self.job.poll()

    async def stop(self, now=False):
        if self.target != CLUSTER:
            return await super().stop(now=now)
        if self.job is not None and self.job.job_id:
            await self.job.stop(now=now)

    def get_state(self):
        state = super().get_state()
        if self.target == CLUSTER and self.job is not None and self.job.job_id:
            state["rees_slurm"] = {"job_id": self.job.job_id,
                                   "unix_user": self.job.req_username}
        return state

    def load_state(self, state):
        super().load_state(state)
        saved = state.get("rees_slurm")
        if saved:
            self.target, self.poll_interval = CLUSTER, self.settings.poll_interval
            try:
                self.job = self._new_job(pwd.getpwnam(saved["unix_user"]))
            except KeyError:
                return  # the unix user is gone, and so is its job: poll says so
            self.job.job_id = saved["job_id"]

    def clear_state(self):
        super().clear_state()
        if self.target == CLUSTER:  # the job's address is not the next container's
            self.ip, self.port = self.local_address
        self.target, self.job = LOCAL, None


def cluster_fieldset(hpc: HpcSettings) -> str:
    """The spawn form's choice of where the server runs (works without JavaScript: the
    cluster fields are read only when the cluster is chosen)."""
    partitions = "".join(f'<option value="{html.escape(p)}">{html.escape(p)}</option>'
                         for p in hpc.partitions)
    walltimes = "".join(f'<option value="{format_walltime(m)}">{format_walltime(m)}</option>'
                        for m in hpc.walltimes)
    from ..settings import format_size

    return (
        '<fieldset class="mb-3" id="rees-target"><legend class="fs-5">Where it runs</legend>'
        '<div class="form-check"><input class="form-check-input" type="radio" name="target" '
        f'id="rees-target-local" value="{LOCAL}" checked><label class="form-check-label" '
        'for="rees-target-local">This machine</label></div>'
        '<div class="form-check"><input class="form-check-input" type="radio" name="target" '
        f'id="rees-target-cluster" value="{CLUSTER}"><label class="form-check-label" '
        'for="rees-target-cluster">The cluster (a Slurm job)</label></div>'
        '<div class="row g-2 mt-1">'
        f'<div class="col"><label class="form-label" for="rees-partition">Partition</label>'
        f'<select class="form-select" id="rees-partition" name="partition">{partitions}'
        '</select></div>'
        f'<div class="col"><label class="form-label" for="rees-walltime">Walltime</label>'
        f'<select class="form-select" id="rees-walltime" name="walltime">{walltimes}'
        '</select></div>'
        '<div class="col"><label class="form-label" for="rees-cpus">CPUs</label>'
        f'<input class="form-control" type="number" min="1" max="{hpc.max_cpus}" value="1" '
        'id="rees-cpus" name="cpus"></div>'
        '<div class="col"><label class="form-label" for="rees-memory">Memory</label>'
        f'<input class="form-control" id="rees-memory" name="memory" value="1G" '
        f'aria-describedby="rees-memory-help"><div class="form-text" id="rees-memory-help">'
        f'At most {format_size(hpc.max_memory)}.</div></div></div></fieldset>')
