"""Add-on services at launch: a signed-in launch of a template whose server gets a
PostgreSQL 15 (and optionally Redis 7) next to it, against the same launch without
services, in one run on one Hub.

- plain: ``POST applications/plain`` as a signed-in user → ``{hub}{location}api/status``
  answers 200 with the user's token; then ``DELETE applications/plain/{id}`` and wait
  until the server is gone.
- with-postgres: the same environment, ``services`` [postgres], and limits that give the
  server itself the same 1 CPU and 1G (services count against a template's limits);
  after the delete, also until its service containers (label
  ``org.tljh-rees.services-of=<server container>``) and private network are gone.
- with-both (unless ``--no-both``): postgres and redis.

A discarded warm-up launch of each template comes first (it builds the service images if
missing, and makes the user's PostgreSQL data folder: the timed launches are a returning
user's). Then the templates alternate ABBA-style (forward, then reversed), so all see the
same machine load. Each launch is broken down from Docker's own timestamps: POST → first
container created, service container created → PostgreSQL logs "ready to accept
connections", and the notebook container created (the spawner starts the server beside
its services, and the launch is ready once both are), → the server answers. Afterwards
``--first-launches`` launches by new users (PostgreSQL's ``initdb`` included) of
with-postgres and plain, interleaved.

The users are this run's own (volumes are named by user, not by Hub: a reused name would
find its PostgreSQL data made already); their volumes are removed at the end.
Run: ``.venv/bin/python benchmarks/bench_services.py [--samples 8] [--json FILE]`` (root,
Docker engine). Goal: with-postgres p50 ≤ 1.5 × plain p50.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time
from contextlib import contextmanager

import docker
from harness import answers, base_image, demo_hub, p50, p95, repo, table, wait_build

LIMITS = {"cpu": 1, "memory": "1G"}  # what each server itself gets
SERVICE_SHARE = {"postgres": (0.5, 256), "redis": (0.5, 128)}  # CPUs, MiB: the defaults


def limits_with(services: list[dict]) -> dict:
    """A template's limits that leave its server LIMITS once its services have theirs."""
    cpu = LIMITS["cpu"] + sum(SERVICE_SHARE[s["name"]][0] for s in services)
    memory = 1024 + sum(SERVICE_SHARE[s["name"]][1] for s in services)
    return {"cpu": cpu, "memory": f"{memory}M"}
GOAL_RATIO = 1.5
LABEL = "org.tljh-rees."
TEMPLATES = {"plain": [], "with-postgres": [{"name": "postgres"}],
             "with-both": [{"name": "postgres"}, {"name": "redis"}]}
READY_LINE = {"postgres": "ready to accept connections",
              "redis": "Ready to accept connections"}




def docker_time(stamp: str) -> float:
    """An engine timestamp (RFC 3339, nanoseconds, UTC) as seconds since the epoch."""
    day, _, rest = stamp.rstrip("Z").partition("T")
    clock, _, fraction = rest.partition(".")
    whole = datetime.datetime.fromisoformat(f"{day}T{clock}+00:00").timestamp()
    return whole + float("0." + (fraction or "0"))



def until(check, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout} s: {what}")
        time.sleep(every)
    return value


def server_container(engine, user: str, server: str):
    found = engine.containers.list(all=True, filters={"label": [
        f"{LABEL}user={user}", f"{LABEL}server-name={server}"]})
    if len(found) != 1:
        raise RuntimeError(f"expected one server container of {user}/{server}: {found}")
    return found[0]


def services_of(engine, container_name: str) -> list:
    return engine.containers.list(all=True, filters={
        "label": f"{LABEL}services-of={container_name}"})


def gone_yet(engine, container_name: str) -> list:
    """What is left of a stopped server: its container, its services, their network (the
    low-level list: a container removed while listed is not an error)."""
    left = engine.api.containers(all=True, filters={
        "label": f"{LABEL}services-of={container_name}"})
    left += [c for c in engine.api.containers(all=True, filters={"name": container_name})
             if f"/{container_name}" in c["Names"]]
    return left + engine.api.networks(names=[f"{container_name}--services"])


def breakdown(engine, posted: float, answered: float, server, services) -> dict:
    """Where the launch's time went, from the engine's timestamps (same clock)."""
    server_created = docker_time(server.attrs["Created"])
    parts = {"post_to_server_created": server_created - posted,
             "server_created_to_answer": answered - server_created}
    if services:
        first = min(docker_time(c.attrs["Created"]) for c in services)
        parts["post_to_services_created"] = first - posted
        for c in services:
            name = c.labels[f"{LABEL}service"]
            created = docker_time(c.attrs["Created"])
            ready = None
            for line in c.logs(timestamps=True).decode("utf-8", "replace").splitlines():
                stamp, _, text = line.partition(" ")
                if READY_LINE[name] in text:
                    ready = docker_time(stamp)
            parts[f"{name}_created_to_ready"] = ready - created if ready else None
            # the runner's health check noticing it, and the server container created
            parts[f"{name}_ready_to_server_created"] = (server_created - ready
                                                        if ready else None)
        parts["services_created_to_server_created"] = server_created - first
    return parts


def sample(hub, engine, user: str, token: str, template: str, settle: float) -> dict:
    posted = time.time()
    t = time.perf_counter()
    r = hub.rees("POST", f"applications/{template}", token=token)
    if r.status_code != 201:
        raise RuntimeError(f"POST applications/{template}: {r.status_code} {r.text}")
    app = r.json()
    answers(hub, app["location"], token)
    seconds = time.perf_counter() - t
    answered = posted + seconds
    server = server_container(engine, user, app["id"])
    services = services_of(engine, server.name)
    if sorted(c.labels[f"{LABEL}service"] for c in services) != sorted(
            s["name"] for s in TEMPLATES[template]):
        raise RuntimeError(f"{template}: unexpected services {[c.name for c in services]}")
    parts = breakdown(engine, posted, answered, server, services)
    t = time.perf_counter()
    r = hub.rees("DELETE", f"applications/{template}/{app['id']}", token=token)
    if r.status_code != 202:
        raise RuntimeError(f"DELETE applications/{template}: {r.status_code} {r.text}")
    until(lambda: app["id"] not in hub.request("GET", f"/hub/api/users/{user}").json()
          ["servers"], 120, f"{user}/{app['id']} stops")
    until(lambda: not gone_yet(engine, server.name), 120,
          f"{server.name}'s containers and network go")
    stopped = time.perf_counter() - t
    time.sleep(settle)
    return {"seconds": seconds, "stop": stopped, "load1": os.getloadavg()[0], **parts}


@contextmanager
def volumes_removed(engine, users: list[str]):
    """Afterwards, remove the home and service volumes of ``users`` (the Hub leaves them,
    as it does a real user's)."""
    try:
        yield
    finally:
        for user in users:
            remove_volumes(engine, user)


def remove_volumes(engine, user: str) -> None:
    home = f"rees-home-{user}"
    found = engine.api.volumes(filters={"name": home})["Volumes"] or []
    for volume in found:
        if volume["Name"] in (home, f"{home}-postgres", f"{home}-redis"):
            engine.api.remove_volume(volume["Name"], force=True)


def git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def summarize(samples: list[dict]) -> dict:
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples if s.get(key) is not None]
        if values:
            out[key] = {"p50": p50(values), "p95": p95(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=8, help="of each template (default 8)")
    parser.add_argument("--no-both", action="store_true",
                        help="leave out the with-both (postgres + redis) template")
    parser.add_argument("--first-launches", type=int, default=2,
                        help="new users' launches (initdb) of with-postgres and plain "
                             "after the samples (default 2 of each)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of rest after each sample (default 1)")
    parser.add_argument("--json", default="bench_services.json",
                        help="where the results go (default ./bench_services.json)")
    args = parser.parse_args()
    names = ["plain", "with-postgres"] + ([] if args.no_both else ["with-both"])
    image = base_image()
    engine = docker.from_env()
    load_before = os.getloadavg()
    section = {"services": {"postgres": {"enabled": True},
                            "redis": {"enabled": True, "persistent": False}}}
    users: list[str] = []  # this run's: their volumes are removed at the end
    with volumes_removed(engine, users), demo_hub(section) as hub, repo() as r:
        r.commit({"Dockerfile": f"FROM {image}\nCOPY --chown=1000:1000 . /home/jovyan/\n"})
        build = hub.rees("POST", "builds", json={"repo": r.url,
                                                 "name": "bench-services"}).json()
        built = wait_build(hub, build["id"])
        assert built["status"] == "built", built
        for name in names:
            answer = hub.rees("POST", "templates", json={
                "name": name, "image-name": "bench-services",
                "limits": limits_with(TEMPLATES[name]),
                "services": TEMPLATES[name]})
            assert answer.status_code == 201, answer.text
        # users of this run only: volumes are named by user (rees-home-<user>), not by Hub,
        # so a name used before would find its PostgreSQL data folder made already
        run = f"{hub.port}{os.getpid()}"
        user = f"benchsvc{run}"
        users.append(user)
        token = hub.user_token(user)
        warmup = {}
        for name in names:  # builds missing service images; the user's postgres volume
            t = time.perf_counter()
            warmup[name] = sample(hub, engine, user, token, name, args.settle)
            warmup[name]["with_setup"] = time.perf_counter() - t
            print(f"[warm-up] {name} {warmup[name]['seconds']:.2f} s")
        samples: dict[str, list[dict]] = {name: [] for name in names}
        for i in range(args.samples):  # ABBA: forward, then reversed
            for name in (names if i % 2 == 0 else names[::-1]):
                samples[name].append(sample(hub, engine, user, token, name, args.settle))
            print(f"[{i + 1}/{args.samples}] " + "  ".join(
                f"{name} {samples[name][-1]['seconds']:.2f} s" for name in names)
                + f"  load {os.getloadavg()[0]:.1f}")
        first: dict[str, list[dict]] = {"plain": [], "with-postgres": []}
        for i in range(args.first_launches):  # new users: initdb on the first start
            for name in (("with-postgres", "plain") if i % 2 == 0
                         else ("plain", "with-postgres")):
                fresh = f"benchnew{run}x{i}{name.replace('-', '')}"
                users.append(fresh)
                first[name].append(sample(hub, engine, fresh, hub.user_token(fresh), name,
                                          args.settle))
            print(f"[first launch {i + 1}/{args.first_launches}] with-postgres "
                  f"{first['with-postgres'][-1]['seconds']:.2f} s  plain "
                  f"{first['plain'][-1]['seconds']:.2f} s")
        demo_log = os.path.join(hub.state_dir, "demo.log")
        built_images = []
        with open(demo_log, errors="replace") as f:
            built_images = sorted({line.split("building ", 1)[1].split(" ", 1)[0]
                                   for line in f if "services: building " in line})
    load_after = os.getloadavg()

    seconds = {name: [s["seconds"] for s in samples[name]] for name in names}
    ratios = {name: p50(seconds[name]) / p50(seconds["plain"]) for name in names[1:]}
    met = ratios["with-postgres"] <= GOAL_RATIO
    results = {
        "benchmark": "bench_services", "date": datetime.datetime.now(
            datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "host": platform.node(), "cpus": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": load_after,
        "settings": {"samples": args.samples, "limits": LIMITS, "settle": args.settle,
                     "templates": {n: TEMPLATES[n] for n in names},
                     "first_launches": args.first_launches,
                     "services": section["services"]},
        "service_images_built_in_warmup": built_images,
        **{name: {"p50": p50(seconds[name]), "p95": p95(seconds[name]),
                  "breakdown": summarize(samples[name]), "samples": samples[name]}
           for name in names},
        "ratios_p50": {f"{n}/plain": v for n, v in ratios.items()},
        "goals": {"with-postgres p50 <= 1.5 x plain p50": met},
        "first_launches": {name: {"p50": p50([s["seconds"] for s in v]),
                                  "breakdown": summarize(v), "samples": v}
                           for name, v in first.items() if v},
        "warmup": warmup,
    }
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)

    def ms(v: float | None) -> str:
        return "      –" if v is None else f"{v * 1000:7.0f} ms"

    print(f"\nbench_services: {args.samples} samples of each, interleaved (ABBA); "
          f"{os.cpu_count()} CPUs, load average {load_before[0]:.1f} → {load_after[0]:.1f}"
          + (f"; warm-up built {', '.join(built_images)}" if built_images else "") + "\n")
    rows = [(f"{name}: POST → api/status 200",
             f"p50 {ms(p50(seconds[name]))}   p95 {ms(p95(seconds[name]))}")
            for name in names]
    rows.append(("with-postgres / plain (p50)", (f"{ratios['with-postgres']:7.2f}  "
                 f"(goal ≤ {GOAL_RATIO}) {'met' if met else 'NOT met'}")))
    if "with-both" in ratios:
        rows.append(("with-both / plain (p50)", f"{ratios['with-both']:7.2f}"))
    for name in names:
        b = results[name]["breakdown"]
        for key in ("post_to_server_created", "post_to_services_created",
                    "postgres_created_to_ready", "redis_created_to_ready",
                    "postgres_ready_to_server_created", "server_created_to_answer", "stop"):
            if key in b:
                rows.append((f"  {name}: {key.replace('_', ' ')}",
                             f"p50 {ms(b[key]['p50'])}   p95 {ms(b[key]['p95'])}"))
    for name, v in results["first_launches"].items():
        rows.append((f"first launch (new user): {name}",
                     f"p50 {ms(v['p50'])}  (n={len(v['samples'])})"))
        if "postgres_created_to_ready" in v["breakdown"]:
            rows.append((f"  {name}: postgres created to ready (initdb)",
                         f"p50 {ms(v['breakdown']['postgres_created_to_ready']['p50'])}"))
    table(rows)
    print(f"\nresults: {os.path.abspath(args.json)}")


if __name__ == "__main__":
    main()
