"""Helpers for tests against the real parts: a demo Hub, local git repositories."""

from __future__ import annotations

import glob
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import nbformat
import requests
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tljh_rees.demo import free_port

@dataclass
class Hub:
    """A running demo Hub, and helpers to call it as its admin or as other users."""

    url: str
    token: str
    state_dir: str
    port: int
    tokens: dict = field(default_factory=dict)

    @property
    def service_url(self) -> str:
        return f"{self.url}/services/rees"

    def request(self, method, path, token=None, **kwargs) -> requests.Response:
        """``path`` starting with /hub/, /user/ or /services/ is relative to the Hub's URL."""
        headers = kwargs.pop("headers", {})
        headers.setdefault("Authorization", f"token {token or self.token}")
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kwargs)

    def rees(self, method, path, token=None, **kwargs) -> requests.Response:
        return self.request(method, f"/services/rees/api/{path}", token=token, **kwargs)

    def user_token(self, name: str, admin: bool = False) -> str:
        """Create user ``name`` (if needed) and return an API token of theirs."""
        if name not in self.tokens:
            r = self.request("POST", f"/hub/api/users/{name}", json={"admin": admin})
            assert r.status_code in (201, 409), r.text
            r = self.request("POST", f"/hub/api/users/{name}/tokens", json={"note": "tests"})
            assert r.status_code == 201, r.text
            self.tokens[name] = r.json()["token"]
        return self.tokens[name]

    def container_prefix(self) -> str:
        return f"rees-demo{self.port}-"


def start_demo_hub(state_dir: str, rees_section: dict | None = None, timeout: float = 180,
                   tljh_config: dict | None = None, demo_args: tuple = ()):
    """Start ``tljh-rees demo`` on free ports; returns (process, Hub).

    ``tljh_config`` adds other keys of TLJH's config.yaml (e.g. ``services.cull``);
    ``demo_args`` more options of ``tljh-rees demo``.
    """
    os.makedirs(state_dir, exist_ok=True)
    section = {"service": {"port": free_port()}}
    section.update(rees_section or {})
    with open(os.path.join(state_dir, "rees.yaml"), "w") as f:
        yaml.safe_dump({**(tljh_config or {}), "rees": section}, f)
    port = free_port()
    token_file = os.path.join(state_dir, "admin-token")
    if os.path.exists(token_file):
        os.remove(token_file)
    log = open(os.path.join(state_dir, "demo.log"), "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tljh_rees", "demo", "--state-dir", state_dir,
         "--port", str(port), *demo_args],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not os.path.exists(token_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_demo_hub(proc)
            with open(os.path.join(state_dir, "demo.log"), errors="replace") as f:
                raise RuntimeError("demo Hub did not start:\n" + f.read()[-5000:])
        time.sleep(0.5)
    time.sleep(0.2)
    with open(token_file) as f:
        token = f.read().strip()
    hub = Hub(url=f"http://127.0.0.1:{port}", token=token, state_dir=state_dir, port=port)
    # the service registers with the proxy a moment after the Hub is up
    deadline = time.monotonic() + 60
    while hub.rees("GET", "health").status_code != 200:
        assert time.monotonic() < deadline, "the rees service did not come up"
        time.sleep(0.3)
    return proc, hub


def stop_demo_hub(proc: subprocess.Popen, hub: Hub | None = None) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    if hub is not None:
        names = subprocess.run(["docker", "ps", "-aq", "--filter",
                                f"name={hub.container_prefix()}"],
                               capture_output=True, text=True).stdout.split()
        if names:
            subprocess.run(["docker", "rm", "-f", *names], capture_output=True)


def _git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org")
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


class GitRepo:
    """A local git repository to build from; ``commit`` adds files and returns the sha."""

    def __init__(self, path: str):
        self.path = path
        os.makedirs(path, exist_ok=True)
        _git(path, "init", "-q", "-b", "main")

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def commit(self, files: dict[str, str], message: str = "update") -> str:
        for name, content in files.items():
            full = os.path.join(self.path, name)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(content)
        _git(self.path, "add", "-A")
        _git(self.path, "commit", "-q", "-m", message)
        return _git(self.path, "rev-parse", "HEAD")

    def git(self, *args) -> str:
        return _git(self.path, *args)


def dockerfile_repo(repo: GitRepo, base_image: str, marker: str = "hello") -> str:
    """A Dockerfile REES repo on the local base image (builds offline); returns the sha."""
    return repo.commit({
        "Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n",
        "README.md": f"# {marker}\n",
        "marker.txt": marker + "\n",
    })


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """The first true value of ``predicate()`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} (waited {timeout:.0f}s)"
        time.sleep(every)


def wait_ready(hub: Hub, user: str, server: str = "", token: str | None = None,
               timeout: float = 120) -> dict:
    """Wait until the user's server is ready; returns its model."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = hub.request("GET", f"/hub/api/users/{user}", token=token).json()
        state = model["servers"].get(server)
        if state and state["ready"]:
            return state
        if state is None or not state.get("pending"):
            raise AssertionError(f"server {user}/{server} is not starting: {state}")
        time.sleep(0.5)
    raise AssertionError(f"server {user}/{server} not ready within {timeout}s")


def remove_built_images(database: str) -> None:
    """Remove the images a test Hub built, so later runs start from a clean engine."""
    if not os.path.exists(database):
        return
    with sqlite3.connect(database) as db:
        images = [row[0] for row in db.execute("SELECT DISTINCT image FROM builds "
                                               "WHERE image IS NOT NULL")]
    if images:
        subprocess.run(["docker", "rmi", "-f", *images], capture_output=True)


def build_through_service(hub: Hub, repo: GitRepo, base_image: str, files: dict, name: str,
                          token: str | None = None, **fields) -> dict:
    """Commit ``files`` with a Dockerfile that copies them into the home folder (as
    repo2docker lays a repository out), build it through the service as ``name``;
    returns the finished build."""
    repo.commit({"Dockerfile": f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n",
                 **files})
    r = hub.rees("POST", "builds", token=token, json={"repo": repo.url, "name": name, **fields})
    assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + 300
    while True:
        build = hub.rees("GET", f"builds/{r.json()['id']}", token=token).json()
        if build["status"] in ("built", "failed", "cancelled"):
            assert build["status"] == "built", build
            return build
        assert time.monotonic() < deadline, f"build of {name} did not finish"
        time.sleep(0.5)


def wait_build(hub, build_id, timeout=300, token=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = hub.rees("GET", f"builds/{build_id}", token=token)
        if r.status_code == 503:  # the service is restarting
            time.sleep(0.5)
            continue
        build = r.json()
        if build["status"] in ("built", "failed", "cancelled"):
            return build
        time.sleep(0.5)
    raise AssertionError(f"build {build_id} did not finish in {timeout}s")


def wait_running(hub, build_id, timeout=60):
    deadline = time.monotonic() + timeout
    while hub.rees("GET", f"builds/{build_id}").json()["status"] != "running":
        assert time.monotonic() < deadline, f"build {build_id} did not start"
        time.sleep(0.1)


def sse_events(hub, build_id, token=None, last_id=None, timeout=300):
    headers = {"Authorization": f"token {token or hub.token}"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    events = []
    with requests.get(f"{hub.service_url}/api/builds/{build_id}/events", headers=headers,
                      stream=True, timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def slow_repo(repo, base_image, seconds=60, marker="slow"):
    """A build whose RUN step takes ``seconds`` (never a layer-cache hit from an earlier run)."""
    nonce = uuid.uuid4().hex
    return repo.commit({"Dockerfile": f"FROM {base_image}\n"
                                      f"RUN echo {marker} {nonce} && sleep {seconds}\n"})


def notebook_json(title: str, code: str = "print('hello')", output: str = "hello\n") -> str:
    return nbformat.writes(new_notebook(cells=[
        new_markdown_cell(f"# {title}"),
        new_code_cell(code, execution_count=1,
                      outputs=[new_output("stream", name="stdout", text=output)]),
    ]))


class CommandLineWatcher:
    """Reads every process's command line over and over, looking for ``secret``
    (``found``: the command lines that held it)."""

    def __init__(self, secret: str):
        self.secret = secret.encode()
        self.found: list[str] = []
        self.git_commands_seen = 0  # a control: it does see git's processes
        self.running = True
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while self.running:
            for path in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    with open(path, "rb") as f:
                        cmdline = f.read()
                except OSError:
                    continue
                if self.secret in cmdline:
                    self.found.append(cmdline.decode("latin-1"))
                if cmdline.startswith(b"git\0"):
                    self.git_commands_seen += 1

    def stop(self) -> list[str]:
        self.running = False
        self.thread.join()
        return self.found


def server_container(hub: Hub, user: str, server: str):
    """The container of a user's server, found by the labels the spawner gives it."""
    import docker

    found = docker.from_env().containers.list(filters={"label": [
        f"org.tljh-rees.user={user}", f"org.tljh-rees.server-name={server}"]})
    found = [c for c in found if c.name.startswith(hub.container_prefix())]
    assert len(found) == 1, [c.name for c in found]
    return found[0]


def stop_server(hub: Hub, user: str, server: str, token: str | None = None,
                timeout: float = 60) -> None:
    """Stop a user's server and wait until the Hub no longer lists it."""
    hub.request("DELETE", f"/hub/api/users/{user}/servers/{server}", token=token)
    deadline = time.monotonic() + timeout
    while server in hub.request("GET", f"/hub/api/users/{user}", token=token).json()["servers"]:
        assert time.monotonic() < deadline, f"{user}/{server} did not stop"
        time.sleep(0.5)


def put_file(hub, user, token, path, content, kind="file"):
    """Write a file (or make a folder) in a user's running server (its contents API)."""
    model = {"type": kind}
    if kind == "file":
        model.update(format="text", content=content)
    elif kind == "notebook":
        model.update(format="json", content=json.loads(content))
    r = hub.request("PUT", f"/user/{user}/api/contents/{path}", token=token, json=model)
    assert r.status_code in (200, 201), r.text


def lab_folder(hub, user, token, folder, base_image):
    """A folder in a running server's home, as a researcher would make it: a Dockerfile,
    a notebook, and a .gitignore that leaves out data/ and logs (but one)."""
    put_file(hub, user, token, folder, None, kind="directory")
    put_file(hub, user, token, f"{folder}/Dockerfile",
             f"FROM {base_image}\nCOPY --chown=1000:1000 . /home/jovyan/\n")
    put_file(hub, user, token, f"{folder}/hello.ipynb", notebook_json("From a folder"),
             kind="notebook")
    # the contents API writes no hidden files: as the user would, from a terminal
    result = server_container(hub, user, "").exec_run(
        ["sh", "-c", f"printf 'data/\\n*.log\\n!keep.log\\n' > {folder}/.gitignore"],
        user="1000", workdir="/home/jovyan")
    assert result.exit_code == 0, result.output
    put_file(hub, user, token, f"{folder}/data", None, kind="directory")
    put_file(hub, user, token, f"{folder}/data/big.csv", "a,b\n" * 100)
    put_file(hub, user, token, f"{folder}/run.log", "noise\n")
    put_file(hub, user, token, f"{folder}/keep.log", "kept\n")


def clients_dockerfile(base_image: str) -> str:
    """A Dockerfile of ``base_image`` with psql and redis-cli, to query a server's add-on
    services from inside it."""
    return (f"FROM {base_image}\nUSER root\n"
            "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "
            "postgresql-client redis-tools && rm -rf /var/lib/apt/lists/*\nUSER jovyan\n")
