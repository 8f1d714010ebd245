"""Launch benchmark (issue 4): request → ready through the proxy, against floors.

Floors, measured in the same run with the same image:
- ``docker run`` of the single-user server itself (``jupyterhub-singleuser``, pointed at
  the same Hub's API) until it answers HTTP — what any JupyterHub launcher must wait for;
- ``docker run`` of a plain ``jupyter server`` until ``/api/status`` answers (no Hub
  extension: a lower bound that JupyterHub's own single-user start-up sits above).
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


def hub_api_port(hub) -> int:
    """The Hub's own API port, from the config ``tljh-rees demo`` wrote."""
    import re

    with open(f"{hub.state_dir}/jupyterhub_config.py") as f:
        args = re.search(r"demo_config\(c, ([^)]*)\)", f.read(), re.S).group(1)
    return int(args.split(",")[3])  # state_dir, ip, port, hub_port, …


def singleuser_floor_once(image: str, hub) -> float:
    """The single-user server alone: started by hand, answering any HTTP status."""
    from tljh_rees.engine.docker import bridge_gateway

    port = free_port()
    api = f"http://{bridge_gateway()}:{hub_api_port(hub)}/hub/api"
    env = {"JUPYTERHUB_API_TOKEN": uuid.uuid4().hex, "JUPYTERHUB_API_URL": api,
           "JUPYTERHUB_SERVICE_PREFIX": "/user/floor/", "JUPYTERHUB_USER": "floor",
           "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-floor", "JUPYTERHUB_BASE_URL": "/",
           "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/floor/",
           "JUPYTERHUB_OAUTH_CALLBACK_URL": "/user/floor/oauth_callback"}
    t = time.perf_counter()
    container = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8888",
         *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], image,
         "jupyterhub-singleuser"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/user/floor/api/status", timeout=2)
                return time.perf_counter() - t  # any answer: JupyterHub's own test of "up"
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError("jupyterhub-singleuser did not answer")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


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
    hub.rees("DELETE", f"servers/{server}", token=token)
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
        floor_once(built["image"])  # warm the page cache for every side
        floors, singleuser, launches = [], [], []
        for i in range(args.runs):  # interleaved, so all see the same machine load
            floors.append(floor_once(built["image"]))
            singleuser.append(singleuser_floor_once(built["image"], hub))
            launches.append(launch_once(hub, token, user, "bench-launch", f"run{i}"))
    median = statistics.median
    print("\ntljh-rees launch benchmark")
    table([("launch: request → ready via proxy", summary(launches)),
           ("floor: docker run jupyterhub-singleuser → answers", summary(singleuser)),
           ("floor: docker run jupyter server → answers", summary(floors)),
           ("launch / singleuser floor", f"{median(launches) / median(singleuser):.2f}  "
                                         "(goal ≤ 1.2)"),
           ("launch / plain-server floor", f"{median(launches) / median(floors):.2f}")])


if __name__ == "__main__":
    main()
