"""Add-on services in multi-node mode, on the real three-node swarm of this folder
(tests/swarm/conftest.py): a server on worker w1 (the "large" profile) with PostgreSQL
on the user's home node (w1, where its volume is) and Redis (not persistent) on w2 (the
nodes labelled for such services); real queries from inside the server, by name, over
the server's own internal overlay; nothing published, nothing secret in labels or logs;
the data outlive a stop; a service that fails fails the launch with its own lines and
leaves nothing behind.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import GitRepo, clients_dockerfile, wait_build, wait_for, wait_ready
from tests.swarm.conftest import RUN
from tests.swarm.test_core import failure, progress, registry_ref, service_node, start
from tests.swarm_support import run

SERVICES = [{"name": "postgres", "version": "15", "params": {"database": "course"}},
            {"name": "redis"}]
OWNER = "org.tljh-rees.services-of"
USER = f"svc{RUN}"  # DockerSpawner keeps such a name as it is (volume names show it)


@pytest.fixture(scope="module")
def client_environment(swarm_hub, base_image, tmp_path_factory):
    """An environment declaring both services, with psql and redis-cli to query them."""
    repo = GitRepo(str(tmp_path_factory.mktemp("swarm-services-repo")))
    name = f"swarm-svc-{RUN}"
    repo.commit({"Dockerfile": clients_dockerfile(base_image),
                 ".rees/services.json": json.dumps(SERVICES)})
    r = swarm_hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
    assert r.status_code == 202, r.text
    build = wait_build(swarm_hub, r.json()["id"], timeout=600)
    assert build["status"] == "built", build
    env = swarm_hub.rees("GET", f"environments/{name}").json()
    assert [s["name"] for s in env["services"]] == ["postgres", "redis"]
    return name


def inspect(kind: str, name: str) -> dict:
    return json.loads(run("docker", kind, "inspect", name).stdout)[0]


def services_of(server: str) -> dict[str, dict]:
    """The Swarm services of ``server`` (its Swarm service name), by kind."""
    ids = run("docker", "service", "ls", "-q", "--filter", f"label={OWNER}={server}").stdout
    found = [inspect("service", i) for i in ids.split()]
    return {s["Spec"]["Labels"]["org.tljh-rees.service"]: s for s in found}


def leftovers(server: str) -> list[str]:
    """Services, secrets and the network of ``server`` still in the swarm."""
    left = [*services_of(server)]
    left += run("docker", "secret", "ls", "-q", "--filter", f"label={OWNER}={server}"
                ).stdout.split()
    left += [n for n in run("docker", "network", "ls", "--format", "{{.Name}}").stdout.split()
             if n == f"{server}--services"]
    return left


def in_server(lab, server: str, command: str):
    """Run ``command`` as the server's user, with its environment, in its container on
    worker w1 (where this module's servers run)."""
    worker = lab.workers[0]
    (container,) = worker.docker("ps", "-q", "--filter",
                                 f"label=com.docker.swarm.service.name={server}").stdout.split()
    done = run("docker", "exec", "-u", "jovyan", container, "bash", "-lc", command,
               check=False, env=worker.env)
    return done.returncode, done.stdout + done.stderr


def launch(hub, server_name: str, environment: str, profile: str):
    r, token = start(hub, USER, server_name, environment, profile)
    assert r.status_code in (201, 202), r.text
    events = progress(hub, USER, server_name, token)
    print(events)  # shown when a test fails
    wait_ready(hub, USER, server_name, timeout=300)
    return token, events


def remove_server(hub, name: str, token: str) -> None:
    """Stop the named server and delete it (a user may have only two)."""
    hub.request("DELETE", f"/hub/api/users/{USER}/servers/{name}", token=token,
                json={"remove": True})
    wait_for(lambda: name not in hub.request("GET", f"/hub/api/users/{USER}",
                                             token=token).json()["servers"],
             120, f"{name} is stopped")


def test_a_server_reaches_its_services_across_nodes(lab, swarm_hub, client_environment):
    hub = swarm_hub
    server = f"rees-swarm-{USER}--db"
    token, events = launch(hub, "db", client_environment, "large")
    # the same progress as on one machine, and where each service landed
    for note in ("starting postgres 15", "postgres 15 is ready", "starting redis 7",
                 "redis 7 is ready", "postgres 15 placed on node rees-swarm-w1 (",
                 "redis 7 placed on node rees-swarm-w2 ("):
        assert note in events, (note, events)
    assert service_node(lab, USER, "db") == "rees-swarm-w1"
    services = services_of(server)
    assert sorted(services) == ["postgres", "redis"]
    nodes = {kind: run("docker", "service", "ps", "--format", "{{.Node}}",
                       s["Spec"]["Name"]).stdout.split() for kind, s in services.items()}
    # postgres where its volume is (the user's home node, the server's too); redis on
    # the node labelled for services that keep nothing
    assert nodes == {"postgres": ["rees-swarm-w1"], "redis": ["rees-swarm-w2"]}, nodes
    home = inspect("config", f"rees-swarm{RUN}-{USER}-node")["Spec"]["Labels"]
    assert home["org.tljh-rees.node"] == lab.workers[0].node_id
    network = inspect("network", f"{server}--services")
    assert (network["Driver"], network["Internal"], network["Attachable"]) == (
        "overlay", True, False)
    server_spec = inspect("service", server)["Spec"]
    env = dict(e.split("=", 1) for e in server_spec["TaskTemplate"]["ContainerSpec"]["Env"])
    assert env["PGHOST"] == "postgres" and env["PGDATABASE"] == "course"
    assert env["REDIS_URL"].endswith("@redis:6379/0")
    secrets = [env["PGPASSWORD"], env["REDIS_PASSWORD"]]
    assert network["Id"] in [n["Target"] for n in server_spec["TaskTemplate"]["Networks"]]
    for kind, service in services.items():
        spec = service["Spec"]
        task = spec["TaskTemplate"]
        # reached only over the overlay, by name: no port published anywhere
        assert not service["Endpoint"].get("Ports") and not spec["EndpointSpec"].get("Ports")
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
        assert [(n["Target"], n.get("Aliases")) for n in task["Networks"]] == [
            (network["Id"], [kind])]
        assert task["Resources"]["Limits"]["MemoryBytes"] == task["Resources"][
            "Reservations"]["MemoryBytes"] > 0
        assert task["ContainerSpec"]["Image"].startswith(f"{hub.registry}/rees/")
        assert "@sha256:" in task["ContainerSpec"]["Image"]
        assert task["ContainerSpec"]["Healthcheck"]["Test"][0] == "CMD"
        shown = json.dumps([spec["Labels"], task["ContainerSpec"]["Labels"],
                            task["ContainerSpec"].get("Args"),
                            task["ContainerSpec"].get("Command")])
        assert not any(s in shown for s in secrets), shown
    mounts = [(m["Type"], m["Source"], m["Target"]) for m in
              services["postgres"]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]]
    assert mounts == [("volume", f"rees-swarm{RUN}-{USER}-postgres",
                       "/var/lib/rees-service/data")]
    assert not services["redis"]["Spec"]["TaskTemplate"]["ContainerSpec"].get("Mounts")
    # real queries from inside the server (w1): postgres on w1, redis across the overlay
    code, out = in_server(lab, server, 'psql "$DATABASE_URL" -tAc "create table notes(t '
                                       "text); insert into notes values ('kept'); select t "
                                       'from notes"')
    assert code == 0 and "kept" in out, out
    code, out = in_server(lab, server, 'redis-cli --no-auth-warning -u "$REDIS_URL" ping && '
                                       'redis-cli --no-auth-warning -u "$REDIS_URL" set '
                                       "greeting hello")
    assert code == 0 and out.split() == ["PONG", "OK"], out
    # the connection details also in ~/.rees/services.env: the server user's, 0400
    code, out = in_server(lab, server, "stat -c '%a %U' ~/.rees/services.env && "
                                       "cat ~/.rees/services.env")
    assert code == 0 and out.startswith("400 jovyan"), out
    assert f"PGPASSWORD={env['PGPASSWORD']}" in out and "REDIS_URL=redis://" in out
    (secret,) = run("docker", "secret", "ls", "-q", "--filter", f"label={OWNER}={server}"
                    ).stdout.split()
    assert not any(s in run("docker", "secret", "inspect", secret).stdout for s in secrets)
    # nothing secret in the Hub's log (the rees service's too) or the services' own
    with open(os.path.join(hub.state_dir, "demo.log"), errors="replace") as f:
        log = f.read()
    for kind, service in services.items():
        logs = run("docker", "service", "logs", "--raw", service["Spec"]["Name"]).stdout
        assert not any(s in logs + log for s in secrets), kind
    # stop: services, network and secret go; the data stay on the home node
    remove_server(hub, "db", token)
    assert not leftovers(server), leftovers(server)
    assert lab.workers[0].docker("volume", "inspect",
                                 f"rees-swarm{RUN}-{USER}-postgres").returncode == 0
    # the next server of this user (any profile: it goes where the files are)
    token, _ = launch(hub, "db2", client_environment, "small")
    assert service_node(lab, USER, "db2") == "rees-swarm-w1"
    server = f"rees-swarm-{USER}--db2"
    code, out = in_server(lab, server, 'psql "$DATABASE_URL" -tAc "select t from notes"')
    assert code == 0 and out.strip() == "kept", out  # persistent
    code, out = in_server(lab, server, 'redis-cli --no-auth-warning -u "$REDIS_URL" get '
                                       "greeting")
    assert code == 0 and out.strip() == "", out  # redis keeps nothing here
    remove_server(hub, "db2", token)
    assert not leftovers(server), leftovers(server)


def test_a_service_that_fails_fails_the_launch_and_leaves_nothing(lab, swarm_hub,
                                                                  client_environment):
    """The user's PostgreSQL data (on w1, from the test above, or made now) are made
    unreadable to PostgreSQL 15: its start fails, and so does the launch."""
    hub = swarm_hub
    volume = f"rees-swarm{RUN}-{USER}-postgres"
    worker = lab.workers[0]
    if worker.docker("volume", "inspect", volume, check=False).returncode != 0:
        token, _ = launch(hub, "first", client_environment, "large")  # w1: the home node
        remove_server(hub, "first", token)
    image = registry_ref(hub, client_environment)  # on w1 already: no pull
    worker.docker("run", "--rm", "--user", "root", "--entrypoint", "sh", "-v",
                  f"{volume}:/v", image, "-c",
                  "mkdir -p /v/pg15 && echo 9.6 > /v/pg15/PG_VERSION")
    r, token = start(hub, USER, "bad", client_environment, "small")
    said = failure(r, hub, USER, "bad", token)
    assert "The postgres service did not start" in said, said
    assert "database files are incompatible with server" in said, said
    assert "starting postgres 15" in said or r.status_code >= 400, said
    wait_for(lambda: "bad" not in hub.request("GET", f"/hub/api/users/{USER}").json()[
        "servers"] or not hub.request("GET", f"/hub/api/users/{USER}").json()["servers"][
        "bad"]["pending"], 120, "the launch ends")
    server = f"rees-swarm-{USER}--bad"
    wait_for(lambda: not leftovers(server), 90, "nothing of the launch is left")
    assert run("docker", "service", "inspect", server, check=False).returncode != 0
    assert worker.docker("volume", "inspect", volume).returncode == 0  # the data stay
