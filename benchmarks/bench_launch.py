"""Launch benchmark (issue 4): request → ready through the proxy, against the floor.

The floor, measured in the same run: ``docker run`` of the same image with a plain
Jupyter server until its ``/api/status`` answers — what any launcher must wait for.
Run: ``.venv/bin/python benchmarks/bench_launch.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
import uuid

import requests

from harness import base_image, demo_hub, repo, summary, table, wait_build
from tljh_rees.demo import free_port


def wait_http(url: str, headers: dict | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def floor_once(image: str) -> float:
    port = free_port()
    token = uuid.uuid4().hex
    t = time.perf_counter()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8888", image,
         "jupyter", "server", "--ip=0.0.0.0", "--port=8888", "--no-browser",
         f"--IdentityProvider.token={token}"],
        check=True, capture_output=True, text=True).stdout.strip()
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status",
                  headers={"Authorization": f"token {token}"})
        return time.perf_counter() - t
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def launch_once(hub, token: str, user: str, environment: str, server: str) -> float:
    t = time.perf_counter()
    r = hub.rees("POST", "applications", token=token,
                 json={"environment": environment, "server_name": server})
    assert r.status_code == 201, r.text
    wait_http(f"{hub.url}/user/{user}/{server}/api/status",
              headers={"Authorization": f"token {token}"})
    elapsed = time.perf_counter() - t
    hub.rees("DELETE", f"applications/{server}", token=token)
    deadline = time.monotonic() + 60
    while server in hub.request("GET", f"/hub/api/users/{user}", token=token).json()["servers"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    image = base_image()
    with demo_hub() as hub, repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nCOPY --chown=1000:1000 . /home/jovyan/\n"})
        build = hub.rees("POST", "builds", json={"repo": r.url, "name": "bench-launch"}).json()
        built = wait_build(hub, build["id"])
        user = "bench"
        token = hub.user_token(user)
        floor_once(built["image"])  # warm the page cache for both sides
        floors, launches = [], []
        for i in range(args.runs):  # interleaved, so both see the same machine load
            floors.append(floor_once(built["image"]))
            launches.append(launch_once(hub, token, user, "bench-launch", f"run{i}"))
    ratio = statistics.median(launches) / statistics.median(floors)
    print("\ntljh-rees launch benchmark")
    table([("launch: request → ready via proxy", summary(launches)),
           ("floor: docker run → server answers", summary(floors)),
           ("launch / floor", f"{ratio:.2f}  (goal ≤ 1.2)")])


if __name__ == "__main__":
    main()
