"""An environment's own add-on services, against a real Hub and dockerd (``od_hub``, which
offers PostgreSQL and Redis): a repository's ``.rees/services.json`` is read by its build
(a bad one is not taken, and the log says why, naming the field), PATCH sets the
services (bad parameters refused by name), a plain launch of the environment (POST
api/applications) gets them, and REDIS_URL works from inside the server."""

from __future__ import annotations

import json

import pytest

from tests.helpers import GitRepo, wait_ready
from tests.helpers import wait_for
from tests.test_services_launch import run_in, server_of, services_of

# an environment with redis-cli (the base image has none); a Dockerfile repository, so it
# installs its clients itself and gets no appendix
DOCKERFILE = ("FROM {base}\nUSER root\nRUN apt-get update -qq && apt-get install -y -qq "
              "--no-install-recommends postgresql-client redis-tools "
              "&& rm -rf /var/lib/apt/lists/*\nUSER jovyan\n")


def build(hub, repo, name):
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
    assert r.status_code == 202, r.text
    done = wait_for(lambda: (b := hub.rees("GET", f"builds/{r.json()['id']}").json())[
        "status"] in ("built", "failed", "cancelled") and b, 600, "the build")
    assert done["status"] == "built", done
    log = hub.rees("GET", f"builds/{done['id']}/log")
    assert log.status_code == 200, log.text
    return done, log.text


@pytest.fixture(scope="module")
def declaring_repo(od_hub, base_image, tmp_path_factory):
    repo = GitRepo(str(tmp_path_factory.mktemp("declaring-repo")))
    repo.commit({"Dockerfile": DOCKERFILE.format(base=base_image),
                 # not taken: the build goes on, the environment keeps its services
                 ".rees/services.json": json.dumps(
                     [{"name": "redis", "params": {"maxmemory": "1K"}}])})
    return repo


def test_declared_patched_and_launched_services(od_hub, declaring_repo):
    hub, name = od_hub, f"env-services-{od_hub.run}"
    _, log = build(hub, declaring_repo, name)
    assert "was not taken" in log and "services[0].params.maxmemory" in log, log
    env = hub.rees("GET", f"environments/{name}").json()
    assert env["services"] == [] and env["status"] == "built"

    # PATCH: checked by the site's offer, the field named
    r = hub.rees("PATCH", f"environments/{name}",
                 json={"services": [{"name": "redis", "params": {"maxmemory": "1K"}}]})
    assert r.status_code == 400 and r.json()["field"] == "services[0].params.maxmemory", r.text
    r = hub.rees("PATCH", f"environments/{name}", json={"services": [{"name": "mysql"}]})
    assert r.status_code == 400 and r.json()["field"] == "services[0].name", r.text
    user = f"envsvc-{hub.run}"
    r = hub.rees("PATCH", f"environments/{name}", token=hub.user_token(user),
                 json={"services": [{"name": "redis"}]})
    assert r.status_code == 403, r.text  # not theirs
    r = hub.rees("PATCH", f"environments/{name}", json={"services": [{"name": "redis"}]})
    assert r.status_code == 200, r.text
    assert [s["name"] for s in r.json()["services"]] == ["redis"]
    assert r.json()["services"][0]["params"]["maxmemory"] == "64M"

    # a plain launch of the environment gets them
    token = hub.user_token(user)
    r = hub.rees("POST", "applications", token=token, json={"environment": name})
    assert r.status_code == 201, r.text
    wait_ready(hub, user, r.json()["id"], token=token, timeout=300)
    server = server_of(hub, user)
    environ = dict(e.split("=", 1) for e in server.attrs["Config"]["Env"])
    assert environ["REDIS_URL"].endswith("@redis:6379/0") and "DATABASE_URL" not in environ
    code, out = run_in(server, 'redis-cli --no-auth-warning -u "$REDIS_URL" set k v && '
                               'redis-cli --no-auth-warning -u "$REDIS_URL" get k')
    assert code == 0 and out.split() == ["OK", "v"], out
    assert [c.labels["org.tljh-rees.service"] for c in services_of(server)] == ["redis"]
    hub.request("DELETE", f"/hub/api/users/{user}/servers/{r.json()['id']}")
    wait_for(lambda: not services_of(server), 60, "the services are removed with the server")

    # a new commit declaring services: the build replaces the environment's
    declaring_repo.commit({".rees/services.json": json.dumps(
        [{"name": "postgres", "params": {"database": "lab"}}])})
    _, log = build(hub, declaring_repo, name)
    assert "declares the add-on services: postgres 15" in log, log
    assert "builds from its own Dockerfile" in log, log
    env = hub.rees("GET", f"environments/{name}").json()
    assert [(s["name"], s["params"]["database"]) for s in env["services"]] == [
        ("postgres", "lab")]
