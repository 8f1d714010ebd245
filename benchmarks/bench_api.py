"""API under load (issue 12): the catalog with many environments, many clients at once,
many listeners on one build, and the service's start.

Run: ``.venv/bin/python benchmarks/bench_api.py [--environments 1000] [--clients 50]``
(root, Docker engine). It starts its own demo Hub, fills the catalog through the API
(one image built, the others the same repository and commit under other names, which
the service answers by tagging, as it would for real), and reports p50/p99 of each
request next to ``GET health`` measured in the same run at the same concurrency.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from harness import base_image, demo_hub, repo, table, wait_build


def percentile(samples: list[float], q: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(round(q * (len(samples) - 1))))]


def fill_catalog(hub, image: str, count: int) -> list[str]:
    """``count`` environments: one build, then the same commit under other names; every
    tenth is private."""
    names = []
    with repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nCOPY --chown=1000:1000 . /home/jovyan/\n",
                  "README.md": "# Load\n", "requirements.txt": "numpy\n"})
        started = time.perf_counter()
        for i in range(count):
            name = f"load-{i:04d}"
            body = {"repo": r.url, "name": name, "public": i % 10 != 0,
                    "description": f"environment number {i}"}
            answer = hub.rees("POST", "builds", json=body).json()
            if answer["status"] != "built":
                answer = wait_build(hub, answer["id"])
            assert answer["status"] == "built", answer
            names.append(name)
        print(f"  catalog filled: {count} environments in {time.perf_counter() - started:.0f} s")
    return names


def hammer(hub, paths: list[str], clients: int, per_client: int) -> list[float]:
    """Times of ``clients`` clients each requesting ``per_client`` paths (round robin)."""
    times: list[float] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"token {hub.token}"
        mine = []
        for j in range(per_client):
            path = paths[(k * per_client + j) % len(paths)]
            t = time.perf_counter()
            r = session.get(f"{hub.service_url}/api/{path}", timeout=300)
            mine.append(time.perf_counter() - t)
            assert r.status_code == 200, (path, r.status_code, r.text[:200])
        with lock:
            times.extend(mine)

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return times


def load(hub, names: list[str], clients: int) -> list[tuple[str, str]]:
    cases = {
        "GET health": ["health"],
        "GET environments (a page of 50)": ["environments"],
        "GET environments?q=… (search)": [f"environments?q=number+{i}" for i in range(97)],
        "GET environments/NAME": [f"environments/{n}" for n in names[::7]],
        "GET gallery (a page of 50)": ["gallery"],
    }
    rows = []
    for concurrency, per_client in ((1, 40), (clients, 20)):
        floor = None
        for label, paths in cases.items():
            hammer(hub, paths, min(concurrency, 4), 2)  # warm up
            times = hammer(hub, paths, concurrency, per_client)
            p50, p99 = statistics.median(times), percentile(times, 0.99)
            if floor is None:
                floor = p50
            rows.append((f"{label}, {concurrency} client(s)",
                         f"p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
                         f"p50/health {p50 / floor:5.1f}"))
    return rows


def service_pid(hub) -> int:
    return hub.request("GET", "/hub/api/services").json()["rees"]["pid"]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def listeners(hub, image: str, count: int) -> list[tuple[str, str]]:
    """``count`` clients follow one live build; memory of the service, and whether every
    client saw the final phase."""
    with repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nRUN for i in $(seq 1 60); do echo line-$i-"
                                f"{time.time_ns()}; sleep 0.1; done\n"})
        build = hub.rees("POST", "builds", json={"repo": r.url, "name": "listened"}).json()
        stalled = stall(hub, build["id"], count // 10)
        finals, before, peak = follow_build(hub, build["id"], count)
    after = rss_kib(service_pid(hub))
    for sock in stalled:
        sock.close()
    return [(f"{count} listeners on one build (and {len(stalled)} that never read)",
             f"{finals.count('built')} of {count} saw the final phase"),
            ("service memory before / peak / after", f"{before / 1024:.0f} / "
             f"{max(peak) / 1024:.0f} / {after / 1024:.0f} MiB")]


def stall(hub, build_id: str, count: int) -> list:
    """Clients that ask for the events and then never read them."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(hub.url)
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((url.hostname, url.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET /services/rees/api/builds/{build_id}/events HTTP/1.1\r\n"
                     f"Host: {url.netloc}\r\nAuthorization: token {hub.token}\r\n\r\n"
                     .encode())
        sockets.append(sock)
    return sockets


def follow_build(hub, build_id: str, count: int):
    """``count`` clients follow the events of one build at once."""
    import asyncio

    from tornado.httpclient import AsyncHTTPClient, HTTPRequest
    from tornado.ioloop import IOLoop

    pid = service_pid(hub)
    before = rss_kib(pid)
    finals, peak = [], [before]

    async def follow() -> None:
        client = AsyncHTTPClient(max_clients=count + 10)
        url = f"{hub.service_url}/api/builds/{build_id}/events"

        async def one():
            seen = []

            def chunk(data: bytes) -> None:
                seen.append(data)
                peak.append(rss_kib(pid))

            await client.fetch(HTTPRequest(url, headers={"Authorization": f"token {hub.token}"},
                                           streaming_callback=chunk, request_timeout=600))
            text = b"".join(seen).decode()
            events = [json.loads(line[6:]) for line in text.splitlines()
                      if line.startswith("data: ")]
            finals.append(events[-1].get("phase") if events else None)

        await asyncio.gather(*(one() for _ in range(count)))

    IOLoop.current().run_sync(follow, timeout=900)
    return finals, before, peak


def process_started(pid: int) -> float:
    """When ``pid`` started, in seconds since the epoch (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def start_time(hub) -> list[tuple[str, str]]:
    """From the service process's start (JupyterHub restarts it when it exits) to its API
    answering with the whole application loaded (``versions`` needs it)."""
    samples = []
    for _ in range(3):
        pid = service_pid(hub)
        os.kill(pid, signal.SIGTERM)
        while True:
            try:
                new = service_pid(hub)
                if new not in (pid, 0) and os.path.exists(f"/proc/{new}") and \
                        hub.rees("GET", "versions").status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.02)
        samples.append(time.time() - process_started(new))
    return [("service start → API answers with the app loaded",
             f"median {statistics.median(samples):.2f} s of {len(samples)}  (goal ≤ 3 s)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--environments", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--listeners", type=int, default=200)
    args = parser.parse_args()
    image = base_image()
    with demo_hub() as hub:
        names = fill_catalog(hub, image, args.environments)
        print(f"\nbench_api: {args.environments} environments\n")
        table(load(hub, names, args.clients))
        table(listeners(hub, image, args.listeners))
        table(start_time(hub))


if __name__ == "__main__":
    main()
