"""Faults, against the real parts: the Docker engine restarted in the middle of a build,
the service SIGKILLed while it writes its database, a full disk under the build logs.

The faults are made on things the tests own: a second Docker engine (the machine's
own is shared with other developers' runs), a demo Hub whose service and repo2docker
talk to it through DOCKER_HOST, and a small tmpfs mounted over that service's log
folder. Each is taken down in ``finally``, also after a failure.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.engine_support import SecondEngine, SmallFilesystem, tools_files
from tests.helpers import sse_events, start_demo_hub, stop_demo_hub, wait_build, wait_for
from tljh_rees.engine.baseimage import BaseImageRecipe, default_ca_bundle

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd and mounts: root")

FINAL = ("built", "failed", "cancelled")
ENGINE_DOWN_SECONDS = 6



def call(hub, method, path, timeout=10, **kwargs) -> requests.Response:
    """``hub.rees`` with a shorter timeout: a call that hangs is a finding here."""
    return requests.request(method, f"{hub.service_url}/api/{path}", timeout=timeout,
                            headers={"Authorization": f"token {hub.token}"}, **kwargs)


def answer(hub, method, path, **kwargs):
    """The service's answer, or None while it is away (restarting: the proxy answers
    502/503, or the connection fails)."""
    try:
        r = call(hub, method, path, **kwargs)
    except requests.RequestException:
        return None
    return None if r.status_code in (502, 503) else r


def status(hub, method, path, **kwargs):
    """The answer's status, or the name of the exception the call raised."""
    try:
        return call(hub, method, path, **kwargs).status_code
    except requests.RequestException as e:
        return type(e).__name__


def build_log(hub, build_id) -> str:
    r = answer(hub, "GET", f"builds/{build_id}/log")
    return r.text if r is not None and r.status_code == 200 else ""


def wait_log(hub, build_id, text: str, timeout: float = 90) -> None:
    """Wait until the build's log shows ``text`` (failing at once if it ended without)."""
    def shown():
        if text in build_log(hub, build_id):
            return True
        r = answer(hub, "GET", f"builds/{build_id}")
        assert r is None or r.json()["status"] not in FINAL, \
            f"the build ended before showing {text!r}: {r.json()}\n{build_log(hub, build_id)}"
        return False
    wait_for(shown, timeout, f"the build did not show {text!r}")


def main_engine_has(image: str) -> bool:
    """Whether the machine's engine (the one the other tests use) has ``image``."""
    return subprocess.run(["docker", "image", "inspect", image],
                          capture_output=True).returncode == 0


def read_jsonl(path: str) -> list[dict]:
    """Every line of a log file as JSON (strictly: a torn line fails)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert text == "" or text.endswith("\n"), f"{path} ends in the middle of a line"
    return [json.loads(line) for line in text.splitlines()]


def check_database(hub) -> None:
    """SQLite's own check, and the catalog's references, read beside the running service."""
    path = os.path.join(hub.state_dir, "rees", "rees.sqlite")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        orphans = db.execute("SELECT b.id FROM builds b LEFT JOIN environments e "
                             "ON e.id = b.environment_id WHERE e.id IS NULL").fetchall()
        assert orphans == [], f"builds of no environment: {orphans}"
        dangling = db.execute("SELECT e.name, e.last_build_id FROM environments e "
                              "LEFT JOIN builds b ON b.id = e.last_build_id "
                              "WHERE e.last_build_id IS NOT NULL AND b.id IS NULL").fetchall()
        assert dangling == [], f"environments whose last build is gone: {dangling}"


class Watcher:
    """Calls the API over and over in a thread while a fault happens, keeping every
    answer: (seconds since start, path, status or the exception's name, JSON or None,
    seconds it took)."""

    def __init__(self, hub, paths: list[str]):
        self.hub, self.paths = hub, paths
        self.answers: list[tuple] = []
        self.pending: tuple | None = None  # (since, path) of the call under way
        self.running = True
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def now(self) -> float:
        return time.monotonic() - self.started

    def _watch(self):
        while self.running:
            for path in self.paths:
                t = self.now()
                self.pending = (t, path)
                try:
                    r = call(self.hub, "GET", path, timeout=30)
                    try:
                        body = r.json()
                    except ValueError:
                        body = None
                    self.answers.append((t, path, r.status_code, body, self.now() - t))
                except requests.RequestException as e:
                    self.answers.append((t, path, type(e).__name__, None, self.now() - t))
                self.pending = None
            time.sleep(0.2)

    def health(self, after: float = 0) -> list[str]:
        return [a[3].get("docker") for a in self.answers
                if a[1] == "health" and a[0] >= after and isinstance(a[3], dict)]

    def summary(self) -> str:
        """One line per answer, for failure messages."""
        lines = [f"{t:6.2f}s {path[:24]:24} {status} {took:.2f}s "
                 f"{(body or {}).get('docker') or (body or {}).get('status') or ''}"
                 for t, path, status, body, took in self.answers]
        if self.pending:
            lines.append(f"{self.pending[0]:6.2f}s {self.pending[1]} under way for "
                         f"{self.now() - self.pending[0]:.1f}s")
        return "\n".join(lines)

    def stop(self) -> list[tuple]:
        self.running = False
        self.thread.join()
        return self.answers


# -- fixtures: an engine and a Hub of this module's own ------------------------------------


@pytest.fixture(scope="module")
def engine2(tiny_image, tmp_path_factory):
    """A second dockerd with the tiny image, plus ``sleep`` and ``seq`` (rees-test/tools).
    Its log is kept in the test run's temporary folder (dockerd.log)."""
    engine = SecondEngine()
    try:
        engine.start()
        engine.load(tiny_image)
        engine.tools = engine.build("rees-test/tools:faults", f"FROM {tiny_image}\nCOPY . /\n",
                                    tools_files())
        # The demo Hub wants its base image on the engine. No server is started here,
        # so the tools image stands in for it (rather than copying 700 MB).
        engine.docker("tag", engine.tools, BaseImageRecipe(ca_bundle=default_ca_bundle()).tag())
        yield engine
    finally:
        engine.close(keep_log=str(tmp_path_factory.mktemp("engine2") / "dockerd.log"))


@pytest.fixture(scope="module")
def engine_hub(engine2, tmp_path_factory):
    """A demo Hub started with DOCKER_HOST set to the second engine: the Hub, its
    service and the service's repo2docker inherit it."""
    state_dir = str(tmp_path_factory.mktemp("faults-hub"))
    with open(os.path.join(state_dir, "rees_config.py"), "w") as f:
        f.write("c.ReesService.engine_sync_interval = 2\n")
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine2.host
    try:
        proc, hub = start_demo_hub(state_dir)
    finally:
        if saved is None:
            del os.environ["DOCKER_HOST"]
        else:
            os.environ["DOCKER_HOST"] = saved
    try:
        yield hub
    finally:
        stop_demo_hub(proc)


# -- 1. the engine restarted in the middle of a build --------------------------------------


def test_engine_restart_mid_build(engine2, engine_hub, git_repo, unique):
    hub, engine = engine_hub, engine2
    assert hub.rees("GET", "health").json() == {"status": "ok", "docker": "ok"}
    repo = git_repo()
    nonce = uuid.uuid4().hex[:8]
    # the output shows 42-<nonce>, the command line $((6*7))-<nonce>: the step really runs
    repo.commit({"Dockerfile": f"FROM {engine.tools}\n"
                               f"RUN echo $((6*7))-{nonce} && sleep 30 && echo end-{nonce}\n"})
    name = unique("engine-restart")
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
    assert r.status_code == 202, r.text
    build = r.json()
    wait_log(hub, build["id"], f"42-{nonce}")  # the slow RUN step runs

    watcher = Watcher(hub, ["health", "environments", f"builds/{build['id']}", "builds"])
    stopped_at = watcher.now()
    engine.stop()  # SIGTERM, as systemctl restart does; wait for it to be gone
    try:
        failed = wait_build(hub, build["id"], timeout=60)
        print("failed while the engine is down:", failed)
        wait_for(lambda: "unreachable" in watcher.health(after=stopped_at), 20,
                 f"the health check did not report the engine down:\n{watcher.summary()}")
        # down long enough for the service's periodic look at the engine (every 2 s)
        time.sleep(max(0.0, stopped_at + ENGINE_DOWN_SECONDS - watcher.now()))
    finally:
        engine.start()
    restarted_at = watcher.now()
    wait_for(lambda: hub.rees("GET", "health").json()["docker"] == "ok", 30,
             "the health check did not report the engine back")
    time.sleep(1)
    answers = watcher.stop()

    # the build is recorded failed, with a reason a person understands
    assert failed["status"] == "failed", failed
    print("failure recorded:", failed["error"])
    assert "Docker engine" in failed["error"], failed["error"]
    # the service kept answering: health said down, then ok; everything else was 200
    health = [a[3]["docker"] for a in answers if a[1] == "health" and a[3]]
    assert "unreachable" in health and health[-1] == "ok", health
    others = [a for a in answers if a[1] != "health"]
    assert others and all(a[2] == 200 for a in others), [a for a in others if a[2] != 200]
    assert max(a[4] for a in answers) < 10, "an API call took 10 s or more"
    print(f"engine down {stopped_at:.1f}s..{restarted_at:.1f}s; {len(answers)} answers")

    # a later build succeeds, on the second engine (not the machine's)
    repo.commit({"Dockerfile": f"FROM {engine.tools}\nRUN echo again-{nonce}\n"})
    later = wait_build(hub, hub.rees("POST", "builds", json={"repo": repo.url,
                                                               "name": name}).json()["id"])
    assert later["status"] == "built", later
    assert engine.has_image(later["image"]) and not main_engine_has(later["image"])
    # no record is lost, none stays running
    builds = hub.rees("GET", "builds", params={"environment": name}).json()["builds"]
    assert {b["id"]: b["status"] for b in builds} == {build["id"]: "failed",
                                                       later["id"]: "built"}
    events = sse_events(hub, build["id"])
    assert events[-1]["type"] == "phase" and events[-1]["phase"] == "failed"
    env = hub.rees("GET", f"environments/{name}").json()
    assert env["status"] == "built" and env["image"] == later["image"]
    # the service's periodic look at the engine outlived the outage: an image removed
    # by hand is noticed
    engine.docker("rmi", "-f", later["image"])
    wait_for(lambda: hub.rees("GET", f"environments/{name}").json()["status"] == "missing",
             20, "the catalog did not notice the image removed after the engine restart")


# -- 2. the service SIGKILLed while it writes its database ---------------------------------

KILLS = 3
OK_ANSWERS = {200, 202, 204, 404, 409}  # 404/409: deleted, or finished, meanwhile
AWAY = {502, 503}  # the proxy, or the service still loading, while it restarts


def service_pid(hub) -> int | None:
    try:
        return hub.request("GET", "/hub/api/services").json()["rees"]["pid"] or None
    except (requests.RequestException, ValueError, KeyError):
        return None


class Writers:
    """Threads that keep the service writing: builds submitted and cancelled, an
    environment deleted with its builds and built again, PATCHes. Every answer is kept,
    and what the service acknowledged, to check it survived the kills."""

    def __init__(self, hub, repos: dict, names: dict, tools: str):
        self.hub, self.repos, self.names, self.tools = hub, repos, names, tools
        self.stopping = threading.Event()
        self.statuses: list[tuple[str, object]] = []
        self.acknowledged_builds: set[str] = set()  # of names["a"], never deleted
        self.acknowledged_cancels: set[str] = set()
        self.descriptions: list[str] = []  # sent to names["a"], in order
        self.acknowledged_description = -1  # index of the last one answered 200
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=f, daemon=True)
                        for f in (self._submit_and_cancel, self._delete_and_rebuild,
                                  self._patch)]
        for t in self.threads:
            t.start()

    def _call(self, method, path, **kwargs):
        try:
            r = call(self.hub, method, path, timeout=30, **kwargs)
        except requests.RequestException as e:
            self.statuses.append((f"{method} {path}", type(e).__name__))
            time.sleep(0.3)
            return None
        self.statuses.append((f"{method} {path}", r.status_code))
        if r.status_code in AWAY:
            time.sleep(0.3)
            return None
        return r

    def _commit(self, key: str) -> None:
        with self.lock:  # one git process at a time per repository
            self.repos[key].commit({"Dockerfile": f"FROM {self.tools}\n"
                                                  f"RUN echo {uuid.uuid4().hex} && sleep 1\n"})

    def _submit_and_cancel(self):
        while not self.stopping.is_set():
            self._commit("a")
            r = self._call("POST", "builds", json={"repo": self.repos["a"].url,
                                                    "name": self.names["a"]})
            if r is None or r.status_code not in (200, 202):
                continue
            build_id = r.json()["id"]
            self.acknowledged_builds.add(build_id)
            time.sleep(random.uniform(0, 1.5))  # queued, or running by now
            r = self._call("DELETE", f"builds/{build_id}")
            if r is not None and r.status_code == 200 and r.json()["status"] == "cancelled":
                self.acknowledged_cancels.add(build_id)

    def _delete_and_rebuild(self):
        while not self.stopping.is_set():
            self._commit("c")
            self._call("POST", "builds", json={"repo": self.repos["c"].url,
                                                "name": self.names["c"]})
            time.sleep(random.uniform(0, 1))
            self._call("DELETE", f"environments/{self.names['c']}", params={"force": "true"})

    def _patch(self):
        n = 0
        while not self.stopping.is_set():
            n += 1
            text = f"description {n}"
            self.descriptions.append(text)
            r = self._call("PATCH", f"environments/{self.names['a']}",
                           json={"description": text, "public": n % 2 == 0})
            if r is not None and r.status_code == 200:
                self.acknowledged_description = len(self.descriptions) - 1
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=60)


def test_service_sigkilled_during_database_writes(engine2, engine_hub, git_repo, unique):
    hub = engine_hub
    repos = {"a": git_repo(), "c": git_repo()}
    names = {"a": unique("kill-a"), "c": unique("kill-c")}
    repos["a"].commit({"Dockerfile": f"FROM {engine2.tools}\n"})
    first = wait_build(hub, hub.rees("POST", "builds", json={"repo": repos["a"].url,
                                                              "name": names["a"]}).json()["id"])
    assert first["status"] == "built", first
    writers = Writers(hub, repos, names, engine2.tools)
    pids, restarts, after_back = [], [], []
    try:
        for kill in range(KILLS):
            # A random moment of the writes. JupyterHub looks at its services every 30 s
            # from their start, so a kill costs ~30 s whenever it comes: let the service
            # write for most of that time.
            time.sleep(random.uniform(2, 10 if kill == 0 else 20))
            pid = wait_for(lambda: service_pid(hub), 30, "the Hub does not know the pid")
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            pids.append(pid)
            # JupyterHub notices (it polls its services every 30 s) and starts it again
            wait_for(lambda pid=pid: service_pid(hub) not in (None, pid)
                     and answer(hub, "GET", "health") is not None, 90,
                     "the service did not come back after SIGKILL", every=0.5)
            restarts.append(time.monotonic() - killed)
            # once it answers, it answers: no more "starting" 503s, also over the
            # connections the proxy opened to it while it was starting (used when
            # several calls come at once)
            with ThreadPoolExecutor(8) as pool:
                after_back.append(list(pool.map(lambda _: status(hub, "GET", "health"),
                                                range(40))))
    finally:
        writers.stop()
    print(f"killed {pids}; back after {[f'{t:.0f}s' for t in restarts]}; "
          f"{len(writers.statuses)} calls, {len(writers.acknowledged_builds)} builds "
          f"acknowledged, {len(writers.acknowledged_cancels)} cancels")

    assert all(s == 200 for back in after_back for s in back), after_back

    # the API answers, and every build is processed: built, failed or cancelled
    def settled():
        r = answer(hub, "GET", "builds", params={"limit": 200})
        return r is not None and r.status_code == 200 and \
            all(b["status"] in FINAL for b in r.json()["builds"])
    wait_for(settled, 120, "builds stay queued or running after the restarts", every=1)
    assert hub.rees("GET", "environments").status_code == 200
    unexpected = [s for s in writers.statuses
                  if s[1] not in OK_ANSWERS | AWAY and not isinstance(s[1], str)]
    assert unexpected == [], unexpected  # e.g. a 500 while the service was up

    check_database(hub)
    path = os.path.join(hub.state_dir, "rees", "rees.sqlite")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = {r[0]: r[1:] for r in db.execute("SELECT id, status, error FROM builds")}
        description = db.execute("SELECT description FROM environments WHERE name = ?",
                                 (names["a"],)).fetchone()[0]
    stuck = {i: r for i, r in rows.items() if r[0] not in FINAL}
    assert stuck == {}, stuck
    unexplained = {i: r for i, r in rows.items() if r[0] != "built" and not r[1]}
    assert unexplained == {}, unexplained
    # nothing the service acknowledged is lost
    lost = writers.acknowledged_builds - set(rows)
    assert lost == set(), f"acknowledged builds missing from the database: {lost}"
    uncancelled = {i: rows[i][0] for i in writers.acknowledged_cancels
                   if rows[i][0] != "cancelled"}
    assert uncancelled == {}, uncancelled
    assert description in writers.descriptions[writers.acknowledged_description:], \
        (description, writers.descriptions[writers.acknowledged_description:][:3])
    # and it still builds
    repos["a"].commit({"Dockerfile": f"FROM {engine2.tools}\nRUN echo after-the-kills\n"})
    later = wait_build(hub, hub.rees("POST", "builds", json={"repo": repos["a"].url,
                                                              "name": names["a"]}).json()["id"])
    assert later["status"] == "built", later


# -- 3. no space left while a build log is written -----------------------------------------

LOG_FS_BYTES = 256 * 1024


def test_disk_full_while_writing_a_build_log(engine2, engine_hub, git_repo, unique):
    hub, engine = engine_hub, engine2
    logs_dir = os.path.join(hub.state_dir, "rees", "logs")
    repo = git_repo()
    nonce = uuid.uuid4().hex[:8]
    # about 300 kB of output, some 2 MB of log events: more than the folder holds
    repo.commit({"Dockerfile": f"FROM {engine.tools}\n"
                               f"RUN echo noisy-{nonce} && seq -w 1 40000\n"})
    name = unique("disk-full")
    # Mounted over the running service's log folder: new logs go to the small
    # filesystem, earlier builds' logs are hidden until it is unmounted.
    small = SmallFilesystem(logs_dir, LOG_FS_BYTES)
    watcher = Watcher(hub, ["health", "environments", "builds"])
    try:
        r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
        assert r.status_code == 202, r.text
        build = r.json()
        live: list = []  # a listener connected while it runs gets the end too

        def listen():
            try:
                live.extend(sse_events(hub, build["id"], timeout=60))
            except BaseException as e:  # noqa: BLE001 - reported below
                live.append({"type": "error", "error": repr(e)})

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        failed = wait_build(hub, build["id"], timeout=120)
        time.sleep(1)
        answers = watcher.stop()
        listener.join(timeout=20)
        print("failure recorded:", failed["error"])
        log_file = os.path.join(logs_dir, f"{build['id']}.jsonl")
        print("log file:", os.path.getsize(log_file), "bytes;",
              shutil.disk_usage(logs_dir).free, "bytes free")

        # the build failed, saying why
        assert failed["status"] == "failed", failed
        assert "no space left" in failed["error"].lower(), failed["error"]
        # the service kept answering
        assert answers and all(a[2] == 200 for a in answers), watcher.summary()
        assert hub.rees("GET", "health").json()["status"] == "ok"
        # nothing corrupt: the log is whole JSON lines, numbered in order, and reads back
        events = read_jsonl(log_file)
        ids = [e["id"] for e in events if e["id"] is not None]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert events[0]["type"] == "phase" and events[0]["phase"] == "queued"
        assert any(f"noisy-{nonce}" in e.get("message", "") for e in events)
        r = hub.rees("GET", f"builds/{build['id']}/log")
        assert r.status_code == 200 and f"noisy-{nonce}" in r.text
        assert not listener.is_alive(), "the live event stream did not end"
        assert live and live[-1]["type"] == "phase" and live[-1]["phase"] == "failed", \
            live[-3:]
        replay = sse_events(hub, build["id"], timeout=30)
        assert any("the log stops here" in e.get("message", "") for e in replay)
        assert replay[-1]["type"] == "phase" and replay[-1]["phase"] == "failed", replay[-3:]
        assert "no space left" in replay[-1]["message"].lower()
        check_database(hub)
        assert all(b["status"] in FINAL for b in hub.rees("GET", "builds").json()["builds"])

        # once there is space again, a new build works
        small.resize(8 * 1024 * 1024)
        repo.commit({"Dockerfile": f"FROM {engine.tools}\nRUN echo quiet-{nonce}\n"})
        r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
        later = wait_build(hub, r.json()["id"], timeout=120)
        assert later["status"] == "built", later
        events = read_jsonl(os.path.join(logs_dir, f"{later['id']}.jsonl"))
        assert events[-1]["type"] == "phase" and events[-1]["phase"] == "built"
    finally:
        watcher.stop()
        small.close()
