"""Multi-node benchmark (issue 18): launches on a worker vs on the manager, and concurrent
launches spread over three nodes vs all on one.

The swarm is the tests' (tests/swarm_support.py): the machine's engine as manager and two
engines in network namespaces as workers. **They share this machine's cores, memory and
disk**, so the spread ratio shows what placement costs or saves here, not the capacity
three real machines would add. Each node carries a label ``rees-swarm-node=<name>`` and a
profile per node pins servers there; ``any`` lets Swarm choose.
Run: ``.venv/bin/python benchmarks/bench_swarm.py [--runs 5] [--concurrent 20]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import time
import uuid

from harness import answers, base_image, demo_hub, repo, table, wait_build
from tests.helpers import dockerfile_repo, stop_server
from tests.swarm_support import SwarmLab
from tests.swarm_support import run as command
from tljh_rees.demo import free_port
from tljh_rees.swarm.registry import CERTS_D

MEMORY = "384M"
VOLUMES = f"rees-swarmbench{uuid.uuid4().hex[:4]}-"  # users' volumes (removed at the end)


def launch(hub, user: str, server: str, environment: str, profile: str) -> float:
    """POST the server → its ``api/status`` answers through the proxy (seconds)."""
    token = hub.user_token(user)
    started = time.monotonic()
    r = hub.request("POST", f"/hub/api/users/{user}/servers/{server}", token=token,
                    json={"environment": environment, "profile": profile})
    if r.status_code not in (201, 202):
        raise RuntimeError(f"{user}/{server}: {r.status_code} {r.text}")
    answers(hub, f"/user/{user}/{server}/", token)
    return time.monotonic() - started


def stop(hub, user: str, server: str) -> None:
    stop_server(hub, user, server, token=hub.user_token(user), timeout=120)


def latency(hub, environment: str, profile: str, run: int) -> float:
    user = f"lat{profile}{run}{uuid.uuid4().hex[:4]}"  # a new user: a new volume each time
    seconds = launch(hub, user, "s", environment, profile)
    stop(hub, user, "s")
    return seconds


def burst(hub, environment: str, profile: str, count: int) -> float:
    """``count`` launches at once (new users); seconds until the last one answers."""
    tag = uuid.uuid4().hex[:4]
    users = [f"b{profile}{tag}{i}" for i in range(count)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda u: launch(hub, u, "s", environment, profile), users))
    elapsed = time.monotonic() - started
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda u: stop(hub, u, "s"), users))
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="launches of each kind")
    parser.add_argument("--concurrent", type=int, default=20, help="launches in a burst")
    args = parser.parse_args()
    base = base_image()
    lab = SwarmLab(workers=2)
    port = free_port()
    try:
        names = {lab.manager_id: "manager"}
        names.update({w.node_id: w.name for w in lab.workers})
        for node_id, name in names.items():
            lab.label(node_id, "rees-swarm-node", name)
        profiles = {name: {"cpu": 1, "memory": MEMORY} for name in [*names.values(), "any"]}
        section = {"profiles": profiles, "default_profile": "any",
                   "storage": {"volume_name": f"{VOLUMES}{{username}}"},
                   "swarm": {"enabled": True, "registry_port": port,
                             "placement": {n: [f"rees-swarm-node={n}"]
                                           for n in names.values()}}}
        with demo_hub(section) as hub, repo() as source:
            dockerfile_repo(source, base, "bench")
            built = wait_build(hub, hub.rees("POST", "builds", json={
                "repo": source.url, "name": "swarm-bench"}).json()["id"])
            assert built["status"] == "built", built
            first = {w.name: latency(hub, "swarm-bench", w.name, 0) for w in lab.workers}
            manager, worker = [], []
            for run in range(1, args.runs + 1):  # interleaved
                manager.append(latency(hub, "swarm-bench", "manager", run))
                worker.append(latency(hub, "swarm-bench", "w1", run))
            one = burst(hub, "swarm-bench", "manager", args.concurrent)
            spread = burst(hub, "swarm-bench", "any", args.concurrent)
        m, w = statistics.median(manager), statistics.median(worker)
        print(f"\nswarm of 3 nodes sharing {os.cpu_count()} cores; "
              f"{args.runs} interleaved launches each, medians")
        table([
            ("first launch on each worker (pulls the image)",
             ", ".join(f"{k} {v:.2f} s" for k, v in first.items())),
            ("launch on the manager", f"{m:.2f} s"),
            ("launch on a worker", f"{w:.2f} s → worker / manager {w / m:.2f}"),
            (f"{args.concurrent} at once, all on the manager",
             f"{one:.1f} s ({args.concurrent / one:.2f} launches/s)"),
            (f"{args.concurrent} at once, Swarm spreads over 3 nodes",
             f"{spread:.1f} s ({args.concurrent / spread:.2f} launches/s) → "
             f"throughput ratio {one / spread:.2f}"),
        ])
    finally:
        lab.close()
        volumes = command("docker", "volume", "ls", "-q", "--filter", f"name={VOLUMES}").stdout
        if volumes.split():
            command("docker", "volume", "rm", "-f", *volumes.split(), check=False)
        shutil.rmtree(os.path.join(CERTS_D, f"{lab.manager_address}:{port}"),
                      ignore_errors=True)


if __name__ == "__main__":
    main()
