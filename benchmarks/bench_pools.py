"""Warm pools (seed 004): an anonymous launch that claims a pooled server against a cold
anonymous launch of an identical template, in one run on one Hub.

- pooled: ``POST applications/pooled`` (no token) → ``{hub}{location}api/status`` answers 200
  with the returned token. Its pool has 2 servers; after each claim the application is
  deleted and the next sample waits until the pool has 2 available again, so every sample
  is a real claim. The refill (claim → 2 available again) is timed too.
- cold: ``POST applications/cold`` (no pool, same image and limits) → polled until
  ``api/status`` answers 200; then deleted.
- fill: after the samples, an empty pool of ``--fill-size`` servers → all available.

Pooled and cold samples alternate (ABBA), so both see the same machine load.
Run: ``.venv/bin/python benchmarks/bench_pools.py [--samples 10] [--json FILE]`` (root,
Docker engine). Goals: pooled p50 ≤ 0.5 s and ≤ 0.15 × cold p50.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time

import requests

from harness import answers, base_image, demo_hub, p50, p95, repo, table, wait_build

POOL = 2
LIMITS = {"cpu": 0.5, "memory": "512M"}
GOAL_SECONDS, GOAL_RATIO = 0.5, 0.15




def anonymous(hub, method: str, path: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(method, f"{hub.service_url}/api/{path}", headers=headers,
                            timeout=60)



def pool(hub, template: str) -> dict:
    r = hub.rees("GET", f"pools/{template}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_pool(hub, template: str, size: int, timeout: float = 300) -> None:
    """Until ``size`` servers are available and none is starting."""
    deadline = time.monotonic() + timeout
    while True:
        state = pool(hub, template)
        if state["available"] == size and state["starting"] == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"pool {template} not full within {timeout} s: {state}")
        time.sleep(0.1)


def launch(hub, template: str) -> tuple[dict, float]:
    """An anonymous launch until the server answers; (application, seconds)."""
    t = time.perf_counter()
    r = anonymous(hub, "POST", f"applications/{template}")
    assert r.status_code == 201, r.text
    app = r.json()
    assert app.get("token") and app.get("location"), app
    answers(hub, app["location"], app["token"], 180)
    return app, time.perf_counter() - t


def delete(hub, template: str, app: dict) -> None:
    r = anonymous(hub, "DELETE", f"applications/{template}/{app['id']}", token=app["token"])
    assert r.status_code == 202, r.text


def pooled_sample(hub, settle: float) -> dict:
    t = time.perf_counter()
    app, seconds = launch(hub, "pooled")
    if not app.get("pooled"):
        raise RuntimeError("the pooled launch was not served from the pool: " + str(app))
    delete(hub, "pooled", app)
    wait_pool(hub, "pooled", POOL)
    refill = time.perf_counter() - t
    time.sleep(settle)  # the new server's own start-up tail, not the next sample's cost
    return {"seconds": seconds, "refill": refill, "load1": os.getloadavg()[0]}


def cold_sample(hub, settle: float) -> dict:
    app, seconds = launch(hub, "cold")
    assert not app.get("pooled"), app
    delete(hub, "cold", app)
    time.sleep(settle)
    return {"seconds": seconds, "load1": os.getloadavg()[0]}


def fill(hub, template: str, size: int) -> float:
    t = time.perf_counter()
    r = hub.rees("POST", f"pools/{template}", json={"size": size})
    assert r.status_code == 200, r.text
    wait_pool(hub, template, size)
    return time.perf_counter() - t


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="of each kind (default 10)")
    parser.add_argument("--fill-size", type=int, default=3,
                        help="servers of the pool filled from empty (default 3)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of rest after each sample (default 1)")
    parser.add_argument("--json", default="bench_pools.json",
                        help="where the results go (default ./bench_pools.json)")
    args = parser.parse_args()
    image = base_image()
    load_before = os.getloadavg()
    section = {"anonymous": {"enabled": True, "launches_per_hour": 0,
                             "max_servers": 4 * args.samples + 10}}
    with demo_hub(section, "c.PoolManager.interval = 0.5\n") as hub, repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nCOPY --chown=1000:1000 . /home/jovyan/\n"})
        build = hub.rees("POST", "builds", json={"repo": r.url, "name": "bench-pools"}).json()
        built = wait_build(hub, build["id"])
        assert built["status"] == "built", built
        for name in ("pooled", "cold"):
            answer = hub.rees("POST", "templates", json={
                "name": name, "image-name": "bench-pools", "limits": LIMITS, "anonymous": True})
            assert answer.status_code == 201, answer.text
        assert hub.rees("POST", "pools/pooled", json={"size": POOL}).status_code == 200
        wait_pool(hub, "pooled", POOL)
        warmup = {"cold": cold_sample(hub, args.settle),  # page cache, first code paths
                  "pooled": pooled_sample(hub, args.settle)}
        pooled, cold = [], []
        for i in range(args.samples):  # ABBA: pooled, cold, cold, pooled, …
            order = (pooled_sample, cold_sample) if i % 2 == 0 else (cold_sample,
                                                                     pooled_sample)
            for take in order:
                (pooled if take is pooled_sample else cold).append(take(hub, args.settle))
            print(f"[{i + 1}/{args.samples}] pooled {pooled[-1]['seconds']:.3f} s  "
                  f"cold {cold[-1]['seconds']:.2f} s  refill {pooled[-1]['refill']:.2f} s")
        # an empty pool filled: the first pool gives back its CPUs (the machine's cap)
        assert hub.rees("DELETE", "pools/pooled").status_code == 204
        fill_seconds = fill(hub, "cold", args.fill_size)
    load_after = os.getloadavg()

    pooled_s = [s["seconds"] for s in pooled]
    cold_s = [s["seconds"] for s in cold]
    refill_s = [s["refill"] for s in pooled]
    ratio = p50(pooled_s) / p50(cold_s)
    met_seconds, met_ratio = p50(pooled_s) <= GOAL_SECONDS, ratio <= GOAL_RATIO
    goals = {"pooled p50 <= 0.5 s": met_seconds, "pooled p50 <= 0.15 x cold p50": met_ratio}
    results = {
        "benchmark": "bench_pools", "date": datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "host": platform.node(), "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": load_after,
        "settings": {"samples": args.samples, "pool_size": POOL, "fill_size": args.fill_size,
                     "limits": LIMITS, "settle": args.settle, "pool_interval": 0.5},
        "pooled": {"p50": p50(pooled_s), "p95": p95(pooled_s), "samples": pooled},
        "cold": {"p50": p50(cold_s), "p95": p95(cold_s), "samples": cold},
        "refill": {"p50": p50(refill_s), "p95": p95(refill_s)},
        "fill": {"size": args.fill_size, "seconds": fill_seconds,
                 "servers_per_minute": 60 * args.fill_size / fill_seconds},
        "pooled_over_cold_p50": ratio, "goals": goals, "warmup": warmup,
    }
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)

    def ms(v: float) -> str:
        return f"{v * 1000:7.0f} ms"

    print(f"\nbench_pools: {args.samples} samples of each, interleaved (ABBA); "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} → {load_after[0]:.1f}\n")
    table([
        ("pooled: POST → api/status 200", f"p50 {ms(p50(pooled_s))}   p95 {ms(p95(pooled_s))}"),
        ("cold:   POST → api/status 200", f"p50 {ms(p50(cold_s))}   p95 {ms(p95(cold_s))}"),
        ("pooled / cold (p50)",
         f"{ratio:7.3f}  (goal ≤ {GOAL_RATIO}) {'met' if met_ratio else 'NOT met'}"),
        ("pooled p50", f"{ms(p50(pooled_s))}  (goal ≤ {GOAL_SECONDS} s) "
                       f"{'met' if met_seconds else 'NOT met'}"),
        ("refill: claim → 2 available again", f"p50 {ms(p50(refill_s))}   "
                                              f"p95 {ms(p95(refill_s))}"),
        (f"fill: empty → {args.fill_size} available", f"{fill_seconds:7.2f} s  "
         f"({results['fill']['servers_per_minute']:.1f} servers/min)"),
    ])
    print(f"\nresults: {os.path.abspath(args.json)}")


if __name__ == "__main__":
    main()
