"""Slurm launch benchmark (issue 19): a server as a Slurm job against a Docker launch.

    .venv/bin/python benchmarks/bench_slurm.py [--runs 3]

Starts a single-node Slurm (tests/slurm_support.py) and a demo Hub with ``rees.hpc`` on,
builds one environment, then measures:
- staging its image for ch-run: the first time (SIF export + unsquashfs into an empty
  image folder) and cached (the folder already there);
- request → ``/user/<name>/<server>/api/status`` answering 200 through the proxy, for the
  same environment on this machine (Docker) and as a Slurm job (image staged already),
  alternately, ``--runs`` times each; the ratio of the medians.
Everything it starts is stopped and removed at the end (jobs, daemons, unix users).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import docker
from harness import answers, base_image, demo_hub, p50, repo, summary, table

from tests.helpers import build_through_service, wait_for
from tests.slurm_support import PARTITION, SlurmCluster
from tljh_rees.hpc.staging import ImageStager

UNIX_PREFIX = "rees-slurm-"


def stage_times(image_id: str, runs: int) -> tuple[list[float], list[float]]:
    api = docker.APIClient(version="auto", timeout=600)
    first, cached = [], []
    for _ in range(runs):
        folder = tempfile.mkdtemp(prefix="rees-slurm-bench-stage-")
        try:
            stager = ImageStager(folder, "charliecloud", "directory")
            t = time.perf_counter()
            assert not stager.stage(api, image_id, lambda _: None).cached
            first.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert stager.stage(api, image_id, lambda _: None).cached
            cached.append(time.perf_counter() - t)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return first, cached


def launch_once(hub, user: str, token: str, environment: str, options: dict) -> float:
    server = f"b{uuid.uuid4().hex[:6]}"
    t = time.perf_counter()
    r = hub.request("POST", f"/hub/api/users/{user}/servers/{server}", token=token,
                    json={"environment": environment, **options})
    assert r.status_code in (201, 202), r.text
    answers(hub, f"/user/{user}/{server}/", token)
    took = time.perf_counter() - t
    hub.request("DELETE", f"/hub/api/users/{user}/servers/{server}", token=token)
    wait_for(lambda: not (hub.request("GET", f"/hub/api/users/{user}").json()["servers"]
                          .get(server) or {}).get("pending"), 120, "the server stopped")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    image = base_image()
    cluster = SlurmCluster().start()
    images = tempfile.mkdtemp(prefix="rees-slurm-images-")
    os.chmod(images, 0o755)
    run = uuid.uuid4().hex[:6]
    try:
        with demo_hub({"hpc": {"enabled": True, "partitions": [PARTITION],
                               "image_dir": images, "max_memory": "2G",
                               "unix_user": UNIX_PREFIX + "{username}",
                               "create_users": True, "slurm_conf": cluster.conf},
                       "storage": {"volume_name": f"rees-slurm-bench{run}-{{username}}"}}) as hub:
            name = f"slurm-bench-{run}"
            with repo() as r:
                build = build_through_service(hub, r, image, {"marker.txt": "bench\n"}, name)
            image_id = docker.APIClient().inspect_image(build["image"])["Id"]
            first, cached = stage_times(image_id, args.runs)
            user = f"b{run}"
            token = hub.user_token(user)
            # the first cluster launch stages the image and makes the unix user: not timed
            launch_once(hub, user, token, name, {"target": "cluster"})
            docker_s, slurm_s = [], []
            for _ in range(args.runs):
                docker_s.append(launch_once(hub, user, token, name, {}))
                slurm_s.append(launch_once(hub, user, token, name, {"target": "cluster"}))
        print(f"\nSlurm target ({os.cpu_count()} CPUs shared, single-node Slurm, ch-run "
              "on an unpacked image)")
        table([
            ("staging, first time", summary(first)),
            ("staging, cached", summary(cached)),
            ("launch on this machine (Docker)", summary(docker_s)),
            ("launch as a Slurm job", summary(slurm_s)),
            ("ratio Slurm / Docker (medians)", f"{p50(slurm_s) / p50(docker_s):.2f}"),
        ])
    finally:
        for line in cluster.jobs():
            cluster.run("scancel", line.split()[0], check=False)
        cluster.stop()
        shutil.rmtree(images, ignore_errors=True)
        volumes = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                                  f"name=rees-slurm-bench{run}-"], capture_output=True,
                                 text=True).stdout.split()
        if volumes:
            subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(UNIX_PREFIX + "b" + run):
                subprocess.run(["userdel", "--remove", entry.pw_name], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
