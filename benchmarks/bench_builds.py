"""Build benchmarks (issue 3): cache hits, rebuild vs cold, log latency, request joining.

Run: ``.venv/bin/python benchmarks/bench_builds.py`` (root, Docker engine; makes the
local base image if needed). Every figure is measured in this run, against a floor
or a peer measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from harness import base_image, demo_hub, repo, summary, table, wait_build


def cache_hit(hub, image: str) -> list[tuple[str, str]]:
    with repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nCOPY . /tmp/src\n"})
        body = {"repo": r.url, "name": "bench-cache"}
        wait_build(hub, hub.rees("POST", "builds", json=body).json()["id"])
        hits, floor = [], []
        for _ in range(20):
            t = time.perf_counter()
            answer = hub.rees("POST", "builds", json=body).json()
            hits.append(time.perf_counter() - t)
            assert answer["status"] == "built" and answer["cache_hit"], answer
            t = time.perf_counter()
            hub.rees("GET", "health")
            floor.append(time.perf_counter() - t)
    ratio = statistics.median(hits) / statistics.median(floor)
    return [("request → built, cache hit", summary(hits)),
            ("floor: GET health, same path", summary(floor)),
            ("cache hit / floor", f"{ratio:.1f}x  (goal: hit under 200 ms)")]


def rebuild_vs_cold(hub, image: str) -> list[tuple[str, str]]:
    nonce = uuid.uuid4().hex[:8]
    dockerfile = (f"FROM {image}\n"
                  f"RUN echo {nonce} && python3 -c 'sum(i*i for i in range(30_000_000))'\n"
                  "COPY --chown=1000:1000 . /home/jovyan/\n")
    with repo() as r:
        r.commit({"Dockerfile": dockerfile, "README.md": "one\n"})
        body = {"repo": r.url, "name": "bench-rebuild"}
        t = time.perf_counter()
        cold = wait_build(hub, hub.rees("POST", "builds", json=body).json()["id"])
        cold_s = time.perf_counter() - t
        r.commit({"README.md": "two\n"})
        t = time.perf_counter()
        warm = wait_build(hub, hub.rees("POST", "builds", json=body).json()["id"])
        warm_s = time.perf_counter() - t
    assert cold["status"] == warm["status"] == "built"
    return [("cold build", f"{cold_s:8.2f} s"),
            ("rebuild after a content-only commit", f"{warm_s:8.2f} s"),
            ("rebuild / cold", f"{warm_s / cold_s:.2f}")]


def log_latency(hub, image: str) -> list[tuple[str, str]]:
    """Seconds from a line printed inside the build to its arrival at an SSE client."""
    script = "for i in $(seq 1 20); do echo stamp $(date +%s.%N); sleep 0.3; done"
    with repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nRUN echo {uuid.uuid4().hex} && {script}\n"})
        build = hub.rees("POST", "builds", json={"repo": r.url, "name": "bench-logs"}).json()
        delays = []
        headers = {"Authorization": f"token {hub.token}"}
        with requests.get(f"{hub.service_url}/api/builds/{build['id']}/events",
                          headers=headers, stream=True, timeout=600) as resp:
            for line in resp.iter_lines(decode_unicode=True):
                if not line.startswith("data: "):
                    continue
                now = time.time()
                message = json.loads(line[6:]).get("message", "")
                if "stamp " in message and "echo" not in message:
                    delays.append(now - float(message.split("stamp ", 1)[1].split()[0]))
    return [("build log line → SSE client", summary(delays))]


def joined_requests(hub, image: str) -> list[tuple[str, str]]:
    with repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nRUN echo {uuid.uuid4().hex} && sleep 2\n"})
        body = {"repo": r.url, "name": "bench-join"}
        barrier = threading.Barrier(20)

        def submit(_):
            barrier.wait()
            return hub.rees("POST", "builds", json=body).json()

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(submit, range(20)))
        ids = {a["id"] for a in answers}
        for build_id in ids:
            wait_build(hub, build_id)
        runs = len(hub.rees("GET", "builds?environment=bench-join").json()["builds"])
    return [("20 concurrent identical requests", f"{len(ids)} build id(s), {runs} repo2docker run(s)")]


def main() -> None:
    image = base_image()
    with demo_hub({"builds": {"concurrency": 1}}) as hub:
        rows = []
        for bench in (cache_hit, rebuild_vs_cold, log_latency, joined_requests):
            print(f"running {bench.__name__} …", flush=True)
            rows += bench(hub, image)
    print("\ntljh-rees build benchmarks")
    table(rows)


if __name__ == "__main__":
    main()
