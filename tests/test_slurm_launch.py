"""Launching built environments as Slurm jobs: a real single-node Slurm (munged, slurmctld,
slurmd, started by tests/slurm_support.py), a real demo Hub with ``rees.hpc`` on, and
charliecloud's ch-run running the environment's image (its SIF, unpacked) on the node.

The Hub runs as root; each job runs as the Hub user's unix user ``rees-slurm-<name>``,
made by the spawner with ``useradd --create-home`` (``rees.hpc.create_users``, as TLJH
makes ``jupyter-<name>``) and removed here afterwards.
"""

from __future__ import annotations

import glob
import html
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

from tests.helpers import (
    GitRepo,
    build_through_service,
    remove_built_images,
    start_demo_hub,
    stop_demo_hub,
    wait_for,
    wait_ready,
)
from tests.slurm_support import PARTITION, SlurmCluster

pytestmark = pytest.mark.slurm
UNIX_PREFIX = "rees-slurm-"


@pytest.fixture(scope="module")
def slurm():
    cluster = SlurmCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def slurm_hub(slurm, base_image, tmp_path_factory):
    """A demo Hub whose spawner may run servers on ``slurm`` (1- and 60-minute walltimes;
    up to 4 CPUs, more than the node has, so that Slurm itself refuses such a job)."""
    images = tempfile.mkdtemp(prefix="rees-slurm-images-")
    os.chmod(images, 0o755)  # the jobs' users read the unpacked images
    state_dir = str(tmp_path_factory.mktemp("slurm-hub"))
    run = uuid.uuid4().hex[:6]
    proc, hub = start_demo_hub(state_dir, {
        "storage": {"volume_name": f"rees-slurm{run}-{{username}}"},
        "hpc": {"enabled": True, "partitions": [PARTITION], "walltimes": [60, 1],
                "max_cpus": 4, "max_memory": "2G", "image_dir": images,
                "unix_user": UNIX_PREFIX + "{username}", "create_users": True,
                "slurm_conf": slurm.conf, "queue_timeout": 15, "poll_interval": 2},
    })
    hub.run, hub.images = run, images
    repo = GitRepo(str(tmp_path_factory.mktemp("slurm-repo")))
    hub.environment = f"slurm-env-{run}"
    build_through_service(hub, repo, base_image, {"marker.txt": "on the cluster\n"},
                          hub.environment)
    yield hub
    stop_demo_hub(proc, hub)
    for line in slurm.jobs():
        slurm.run("scancel", line.split()[0], check=False)
    remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))
    for user in pwd.getpwall():
        if user.pw_name.startswith(UNIX_PREFIX + "u" + run):
            subprocess.run(["userdel", "--remove", user.pw_name], capture_output=True)
    shutil.rmtree(images, ignore_errors=True)
    remove_volumes(f"rees-slurm{run}-")


def remove_volumes(prefix: str) -> None:
    """The Docker volumes of servers started on this machine (the form's test)."""
    names = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"name={prefix}"],
                           capture_output=True, text=True).stdout.split()
    if names:
        subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True)


@pytest.fixture
def hub_user(slurm_hub):
    """A new Hub user (its unix user is made by the spawner at its first cluster start)."""
    name = f"u{slurm_hub.run}{uuid.uuid4().hex[:4]}"
    return name, slurm_hub.user_token(name)


def start(hub, user, server, token, **options):
    return hub.request("POST", f"/hub/api/users/{user}/servers/{server}", token=token,
                       json={"environment": hub.environment, "target": "cluster", **options})


def server_state(hub, user, server) -> dict | None:
    """The server's model with its spawner state (the admin's token may read it)."""
    model = hub.request("GET", f"/hub/api/users/{user}",
                        params={"include_stopped_servers": "1"}).json()
    return model["servers"].get(server)


def job_of(hub, user, server) -> str:
    return server_state(hub, user, server)["state"]["rees_slurm"]["job_id"]


def progress_messages(hub, user, server, token, timeout=120) -> list[dict]:
    """The spawn's progress events (the Hub's event stream), until it ends."""
    r = requests.get(f"{hub.url}/hub/api/users/{user}/servers/{server}/progress",
                     headers={"Authorization": f"token {token}"}, stream=True, timeout=timeout)
    events = []
    for line in r.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            events.append(json.loads(line[5:]))
    return events


def failure(hub, user, server, token, response) -> str:
    """The message of a start that failed: at once (the API's answer) or later (the last
    event of its progress)."""
    if response.status_code == 400:
        return response.json()["message"]
    assert response.status_code == 202, response.text
    events = progress_messages(hub, user, server, token, timeout=300)
    assert events[-1].get("failed"), events
    return events[-1]["message"]


def test_launch_as_slurm_job_reach_it_and_stop(slurm, slurm_hub, hub_user):
    hub = slurm_hub
    user, token = hub_user
    r = start(hub, user, "hpc", token, walltime="01:00:00", cpus="1", memory="1G")
    assert r.status_code in (201, 202), r.text
    events = progress_messages(hub, user, "hpc", token, timeout=600)
    messages = [e.get("message", "") for e in events]
    assert any("Exporting the environment's image as SIF" in m for m in messages), messages
    assert any(m.startswith("Submitted Slurm job ") and PARTITION in m for m in messages)
    assert any(f"running on node {slurm.host}" in m for m in messages), messages
    assert events[-1].get("ready"), events[-1]
    wait_ready(hub, user, "hpc", token=token)

    # through the Hub's proxy to the server inside the job
    r = hub.request("GET", f"/user/{user}/hpc/api/status", token=token)
    assert r.status_code == 200, r.text
    job = job_of(hub, user, "hpc")
    unix = UNIX_PREFIX + user
    assert [line.split()[:2] for line in slurm.jobs(unix)] == [[job, "RUNNING"]]

    # the server runs as the user's unix user, in their cluster home
    r = hub.request("PUT", f"/user/{user}/hpc/api/contents/from-the-job.txt", token=token,
                    json={"type": "file", "format": "text", "content": "written"})
    assert r.status_code in (200, 201), r.text
    written = os.path.join(pwd.getpwnam(unix).pw_dir, "from-the-job.txt")
    assert os.stat(written).st_uid == pwd.getpwnam(unix).pw_uid
    # the environment's own files are in the image
    status, out = subprocess.getstatusoutput(
        f"cat {hub.images}/*.d/home/jovyan/marker.txt")
    assert status == 0 and "on the cluster" in out

    # stop: scancel, and the job leaves the queue
    r = hub.request("DELETE", f"/hub/api/users/{user}/servers/hpc", token=token)
    assert r.status_code in (202, 204), r.text
    wait_for(lambda: not slurm.jobs(unix), 60, "the job left squeue after the stop")
    wait_for(lambda: not (server_state(hub, user, "hpc") or {}).get("ready", False) and
             not (server_state(hub, user, "hpc") or {}).get("pending"), 60, "server stopped")

    # a second start reuses the staged image (the same unpacked directory)
    staged = [os.stat(path) for path in glob.glob(f"{hub.images}/*.d")]
    assert len(staged) == 1
    r = start(hub, user, "hpc", token)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, user, "hpc", token=token)
    again = [os.stat(path) for path in glob.glob(f"{hub.images}/*.d")]
    assert [(s.st_ino, s.st_mtime) for s in again] == [(s.st_ino, s.st_mtime) for s in staged]
    hub.request("DELETE", f"/hub/api/users/{user}/servers/hpc", token=token)
    wait_for(lambda: not slurm.jobs(unix), 60, "the second job left squeue")


def test_bad_choices_are_refused_naming_the_field(slurm_hub, hub_user):
    hub = slurm_hub
    user, token = hub_user
    for options, field, words in (
        ({"partition": "gpu"}, "partition", f"choose one of {PARTITION}"),
        ({"walltime": "02:00:00"}, "walltime", "longer than allowed"),
        ({"walltime": "soon"}, "walltime", "expected a walltime"),
        ({"cpus": "8"}, "cpus", "at most 4"),
        ({"memory": "64G"}, "memory", "at most 2G"),
        ({"target": "moon"}, "target", "'this-machine' or 'cluster'"),
    ):
        r = start(hub, user, "bad", token, **options)
        assert r.status_code == 400, (options, r.text)
        message = r.json()["message"]
        assert message.startswith(f"{field}: ") and words in message, (options, message)
    # cluster fields for a server on this machine are refused, not ignored
    r = start(hub, user, "bad", token, target="this-machine", partition=PARTITION)
    assert r.status_code == 400 and "only for target 'cluster'" in r.json()["message"]


def test_walltime_reached_the_hub_sees_the_server_gone(slurm, slurm_hub, hub_user):
    hub = slurm_hub
    user, token = hub_user
    r = start(hub, user, "short", token, walltime="1")
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, user, "short", token=token, timeout=300)
    started = time.monotonic()
    job = job_of(hub, user, "short")
    assert slurm.jobs(UNIX_PREFIX + user)
    # Slurm ends the job at one minute (and KillWait); the Hub's poll notices it
    wait_for(lambda: server_state(hub, user, "short") is not None
             and not server_state(hub, user, "short")["ready"]
             and not server_state(hub, user, "short")["pending"], 150,
             "the Hub noticed the job's end")
    assert time.monotonic() - started > 30  # not stopped for another reason at once
    assert not any(line.split()[0] == job for line in slurm.jobs())
    assert hub.request("GET", f"/user/{user}/short/api/status", token=token).status_code != 200


def test_jobs_that_cannot_run_are_refused_or_cancelled_with_the_reason(slurm, slurm_hub,
                                                                      hub_user):
    hub = slurm_hub
    user, token = hub_user
    # more CPUs than the node has: cancelled at once, with Slurm's reason
    r = start(hub, user, "big", token, cpus="4")
    message = failure(hub, user, "big", token, r)
    assert "cannot run as asked (PartitionConfig" in message and "cancelled" in message
    wait_for(lambda: not slurm.jobs(UNIX_PREFIX + user), 30, "the job left the queue")

    # the node busy with another job: queued, then cancelled past rees.hpc.queue_timeout
    blocker = slurm.run("sbatch", "--parsable", "-p", PARTITION, "-c", str(os.cpu_count()),
                        "--mem=100M", "-o", "/dev/null", "--wrap", "sleep 600").strip()
    try:
        wait_for(lambda: any(line.startswith(f"{blocker} RUNNING") for line in slurm.jobs()),
                 30, "the blocking job runs")
        r = start(hub, user, "queued", token)
        assert r.status_code in (201, 202), r.text
        events = progress_messages(hub, user, "queued", token, timeout=300)
        messages = [e.get("message", "") for e in events]
        assert any(m.startswith("Queued: Slurm job") and "Resources" in m
                   and "position 1 of 1" in m for m in messages), messages
        assert events[-1].get("failed"), events[-1]
        assert "waited 15s in the queue (Resources" in events[-1]["message"]
        assert "cancelled" in events[-1]["message"]
        wait_for(lambda: not slurm.jobs(UNIX_PREFIX + user), 30, "the job left the queue")
    finally:
        slurm.run("scancel", blocker, check=False)


def browser(hub, user: str) -> tuple[requests.Session, str]:
    """A logged-in session of ``user`` (the demo's login takes any password on loopback)
    and the xsrf token of its forms."""
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = session.post(f"{hub.url}/hub/login", data={"username": user, "password": "x",
                                                   "_xsrf": xsrf}, timeout=30)
    assert r.status_code == 200, r.text
    return session, session.cookies.get("_xsrf") or xsrf


def test_spawn_form_offers_the_cluster_and_checks_the_choice(slurm, slurm_hub, hub_user):
    hub = slurm_hub
    user, token = hub_user
    session, xsrf = browser(hub, user)
    page = session.get(f"{hub.url}/hub/spawn/{user}/form", timeout=30).text
    assert 'id="rees-target"' in page and f'<option value="{PARTITION}">' in page
    assert '<option value="00:01:00">' in page and 'max="4"' in page
    fields = {"_xsrf": xsrf, "environment": hub.environment, "partition": PARTITION,
              "walltime": "01:00:00", "cpus": "1", "memory": "1G"}
    # the cluster, with a walltime the admin does not offer: refused, naming the field
    r = session.post(f"{hub.url}/hub/spawn/{user}/form", timeout=60,
                     data={**fields, "target": "cluster", "walltime": "02:00:00"})
    assert "walltime: 02:00:00 is longer than allowed" in html.unescape(r.text), r.text[-2000:]
    assert not slurm.jobs(UNIX_PREFIX + user)
    # this machine: the form's cluster fields are dropped, the server is a container
    r = session.post(f"{hub.url}/hub/spawn/{user}/form", timeout=60,
                     data={**fields, "target": "this-machine"})
    assert r.status_code == 200, r.text[-2000:]
    wait_ready(hub, user, "form", token=token)
    assert "rees_slurm" not in server_state(hub, user, "form")["state"]
    assert not slurm.jobs(UNIX_PREFIX + user)
    hub.request("DELETE", f"/hub/api/users/{user}/servers/form", token=token)


def test_applications_api_launches_on_the_cluster(slurm, slurm_hub, hub_user):
    hub = slurm_hub
    user, token = hub_user
    r = hub.rees("POST", "applications", token=token,
                 json={"environment": hub.environment, "cluster": {"queue": "x"}})
    assert r.status_code == 400 and r.json()["field"] == "cluster.queue", r.text
    r = hub.rees("POST", "applications", token=token, json={
        "environment": hub.environment, "server_name": "bad",
        "cluster": {"walltime": "02:00:00"}})
    assert r.status_code == 400 and r.json()["field"] == "cluster.walltime", r.text
    assert "02:00:00 is longer than allowed" in r.json()["error"]
    r = hub.rees("POST", "applications", token=token, json={
        "environment": hub.environment, "server_name": "api",
        "cluster": {"partition": PARTITION, "walltime": "01:00:00", "cpus": 1}})
    assert r.status_code == 201, r.text
    assert r.json()["location"] == f"/user/{user}/api/"
    wait_ready(hub, user, "api", token=token, timeout=300)
    assert hub.request("GET", f"/user/{user}/api/api/status", token=token).status_code == 200
    job = job_of(hub, user, "api")
    assert [line.split()[:2] for line in slurm.jobs(UNIX_PREFIX + user)] == [[job, "RUNNING"]]
    assert hub.rees("DELETE", "servers/api", token=token).status_code == 202
    wait_for(lambda: not slurm.jobs(UNIX_PREFIX + user), 60, "the job left squeue")
