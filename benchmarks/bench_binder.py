"""Binder links (issue 13): a link to an already built repository against a plain launch of
the same environment, and the cache check alone.

Run: ``.venv/bin/python benchmarks/bench_binder.py [--runs 5]`` (root, Docker engine). A
local git server stands in for GitHub; runs of the two kinds are interleaved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid

import requests

from harness import base_image, demo_hub, table

sys.path.insert(0, __file__.rsplit("/benchmarks/", 1)[0])
from tests.githttp import PublicGitServer  # noqa: E402
from tests.helpers import GitRepo, dockerfile_repo  # noqa: E402


def stream(hub, path: str, until: str = "ready") -> tuple[list[dict], float, dict]:
    """Events of ``build/<path>``; the seconds until the first ``until`` event."""
    started = time.perf_counter()
    events, at = [], None
    with requests.get(f"{hub.service_url}/build/{path}", stream=True, timeout=600,
                      headers={"Authorization": f"token {hub.token}",
                               "Accept": "text/event-stream"}) as r:
        for line in r.iter_lines(decode_unicode=True):
            if not line.startswith("data: "):
                continue
            events.append(json.loads(line[6:]))
            if events[-1]["phase"] == until and at is None:
                at = time.perf_counter() - started
                if until != "ready":
                    break
            if events[-1]["phase"] in ("ready", "failed"):
                break
    assert events[-1]["phase"] != "failed", events[-1]
    return events, at, events[-1]


def answers(url: str, headers: dict) -> None:
    while requests.get(f"{url}api/status", headers=headers, timeout=30).status_code != 200:
        time.sleep(0.05)


def stop(hub, server: str) -> None:
    hub.request("DELETE", f"/hub/api/users/admin/servers/{server}", json={"remove": True})
    while server in hub.request("GET", "/hub/api/users/admin").json()["servers"]:
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    image = base_image()
    with tempfile.TemporaryDirectory() as root, PublicGitServer(root) as git_host:
        repo = GitRepo(f"{root}/work")
        dockerfile_repo(repo, image, marker=f"bench {uuid.uuid4().hex}")
        git_host.publish("bench/demo", repo.path)
        with demo_hub({"binder": {"base_urls": {"gh": git_host.url}}}) as hub:
            spec = "gh/bench/demo/HEAD"
            _, _, built = stream(hub, spec + "?build_only=true")
            name = next(e for e in hub.rees("GET", "environments",
                                            params={"q": "binder.gh-bench"})
                        .json()["environments"])["name"]
            check, link, plain = [], [], []
            for _ in range(args.runs):
                check.append(stream(hub, spec + "?build_only=true", until="built")[1])
                t = time.perf_counter()
                _, _, ready = stream(hub, spec)
                answers(ready["url"], {"Authorization": f"token {ready['token']}"})
                link.append(time.perf_counter() - t)
                stop(hub, ready["url"].rstrip("/").rsplit("/", 1)[1])
                t = time.perf_counter()
                app = hub.rees("POST", "applications", json={"environment": name}).json()
                answers(f"{hub.url}{app['location']}", {"Authorization": f"token {hub.token}"})
                plain.append(time.perf_counter() - t)
                stop(hub, app["id"])
    med = statistics.median
    print(f"\nbench_binder: {args.runs} interleaved runs, medians\n")
    table([
        ("link → cached image found (built event)", f"{med(check) * 1000:7.0f} ms  (goal ≤ 200 ms)"),
        ("link → ready, server answering", f"{med(link):7.2f} s"),
        ("POST applications → server answering", f"{med(plain):7.2f} s"),
        ("link / plain launch", f"{med(link) / med(plain):7.2f}  (goal ≤ 1.1)"),
    ])


if __name__ == "__main__":
    main()
