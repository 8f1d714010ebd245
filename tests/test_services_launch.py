"""Add-on services at launch, against a real Hub and dockerd: a server of a template with
PostgreSQL and Redis reaches both (real queries from inside its container, with what its
environment says), another user's server cannot, stopping removes them, PostgreSQL's data
outlives a stop, bad parameters are refused, a service that cannot start fails the launch
with its own lines and leaves nothing running, and pooled servers get theirs started
ahead. The Hub is ``od_hub`` (conftest.py), which offers both services."""

from __future__ import annotations

import string

import docker
import pytest
import requests
from escapism import escape

from tests.helpers import GitRepo, clients_dockerfile, wait_for
from tljh_rees.services.kinds import kind_named
from tljh_rees.services.runner import ServiceRunner

SERVICES = [{"name": "postgres", "version": "15", "params": {"database": "course"}},
            {"name": "redis"}]



@pytest.fixture(scope="module")
def client_environment(od_hub, base_image, tmp_path_factory):
    """An environment with psql and redis-cli, to query the services from the server."""
    repo = GitRepo(str(tmp_path_factory.mktemp("services-repo")))
    name = f"with-clients-{od_hub.run}"
    repo.commit({"Dockerfile": clients_dockerfile(base_image)})
    r = od_hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
    assert r.status_code == 202, r.text
    build = wait_for(lambda: (b := od_hub.rees("GET", f"builds/{r.json()['id']}").json())[
        "status"] in ("built", "failed") and b, 600, "the build")
    assert build["status"] == "built", build
    return name


@pytest.fixture(scope="module")
def template(od_hub, client_environment):
    name = f"sql-course-{od_hub.run}"
    r = od_hub.rees("POST", "templates", json={
        "name": name, "image-name": client_environment, "services": SERVICES,
        "anonymous": True, "limits": {"cpu": 1.5, "memory": "1G"}})
    assert r.status_code == 201, r.text
    assert [s["name"] for s in r.json()["services"]] == ["postgres", "redis"]
    return name


def launch(hub, user, template):
    token = hub.user_token(user)
    r = hub.rees("POST", f"applications/{template}", token=token)
    assert r.status_code == 201, r.text
    app = r.json()
    wait_for(lambda: hub.rees("GET", f"applications/{template}/{app['id']}", token=token)
          .json()["ready"], 300, f"{user}'s server")
    return app


def server_of(hub, user):
    (found,) = docker.from_env().containers.list(filters={"label": [
        f"org.tljh-rees.user={user}", "org.tljh-rees.server-name"]})
    return found


def services_of(container):
    return docker.from_env().containers.list(all=True, filters={
        "label": f"org.tljh-rees.services-of={container.name}"})


def run_in(container, command: str):
    """Run ``command`` as the server's user, with the server's own environment."""
    result = container.exec_run(["bash", "-lc", command], user="jovyan")
    return result.exit_code, result.output.decode()


def stop(hub, user, app, template):
    token = hub.user_token(user)
    hub.rees("DELETE", f"applications/{template}/{app['id']}", token=token)
    wait_for(lambda: app["id"] not in hub.request("GET", f"/hub/api/users/{user}").json()
          ["servers"], 60, f"{user}'s server stops")


def test_a_server_reaches_its_services_and_only_it_does(od_hub, template):
    hub = od_hub
    alice, bob = f"svc-alice-{hub.run}", f"svc-bob-{hub.run}"
    app = launch(hub, alice, template)
    server = server_of(hub, alice)
    # the services' share (postgres 256M + 0.5 CPU, redis 128M + 0.5) comes off the
    # template's 1G and 1.5 CPUs
    assert server.attrs["HostConfig"]["Memory"] == 640 * 1024**2
    assert server.attrs["HostConfig"]["CpuQuota"] == 50_000
    # the connection details, in the environment and in ~/.rees/services.env
    env = dict(e.split("=", 1) for e in server.attrs["Config"]["Env"])
    assert env["PGHOST"] == "postgres" and env["PGDATABASE"] == "course"
    assert env["DATABASE_URL"].startswith("postgresql://notebook:")
    assert env["REDIS_URL"].startswith("redis://default:")
    assert env["REDIS_URL"].endswith("@redis:6379/0")
    code, out = run_in(server, "stat -c %a ~/.rees/services.env && cat ~/.rees/services.env")
    assert code == 0 and out.startswith("600") and f"PGPASSWORD={env['PGPASSWORD']}" in out
    # real queries, from inside the server
    code, out = run_in(server, 'psql "$DATABASE_URL" -tAc "create table notes(t text); '
                               "insert into notes values ('kept'); select t from notes\"")
    assert code == 0 and "kept" in out, out
    code, out = run_in(server, 'redis-cli --no-auth-warning -u "$REDIS_URL" set greeting hello && '
                               'redis-cli --no-auth-warning -u "$REDIS_URL" get greeting')
    assert code == 0 and out.split() == ["OK", "hello"], out
    # the services: on a private network, no host port, no password in sight
    services = services_of(server)
    assert sorted(c.labels["org.tljh-rees.service"] for c in services) == ["postgres", "redis"]
    for container in services:
        assert not container.attrs["HostConfig"]["PortBindings"]
        assert list(container.attrs["NetworkSettings"]["Networks"]) == [
            f"{server.name}--services"]
        shown = repr(container.attrs["Config"]["Cmd"]) + repr(container.attrs["Config"]
                                                              ["Labels"])
        assert env["PGPASSWORD"] not in shown and env["REDIS_URL"].split(":")[2] not in shown
    postgres_ip = next(c for c in services if c.labels["org.tljh-rees.service"] == "postgres"
                       ).attrs["NetworkSettings"]["Networks"][f"{server.name}--services"][
                           "IPAddress"]
    # another user's server: its own services, and no way to alice's
    other_app = launch(hub, bob, template)
    other = server_of(hub, bob)
    code, out = run_in(other, 'psql "$DATABASE_URL" -tAc "select count(*) from '
                              'pg_tables where tablename = \'notes\'"')
    assert code == 0 and out.strip() == "0", out
    code, out = run_in(other, f"PGCONNECT_TIMEOUT=3 psql -h {postgres_ip} -U notebook "
                              "-d course -tAc 'select 1'")
    assert code != 0 and ("timeout" in out or "unreachable" in out or "could not" in out), out
    # nor from the Hub's bridge, where every server is
    probe = docker.from_env().containers.run(
        server.image.id, ["bash", "-c", f"timeout 3 bash -c '</dev/tcp/{postgres_ip}/5432'"],
        user="jovyan", entrypoint=[], detach=True)
    try:
        assert probe.wait()["StatusCode"] != 0
    finally:
        probe.remove(force=True)
    stop(hub, bob, other_app, template)
    # stopping removes the services and the network; the data stays in alice's volume
    stop(hub, alice, app, template)
    assert not services_of(server)
    assert not docker.from_env().networks.list(names=[f"{server.name}--services"])
    app = launch(hub, alice, template)
    server = server_of(hub, alice)
    code, out = run_in(server, 'psql "$DATABASE_URL" -tAc "select t from notes"')
    assert code == 0 and out.strip() == "kept", out  # persistent
    code, out = run_in(server, 'redis-cli --no-auth-warning -u "$REDIS_URL" get greeting')
    assert code == 0 and out.strip() == "", out  # redis is not persistent here
    stop(hub, alice, app, template)


def test_bad_service_parameters_are_refused_with_their_name(od_hub, client_environment):
    r = od_hub.rees("POST", "templates", json={
        "name": f"bad-svc-{od_hub.run}", "image-name": client_environment,
        "services": [{"name": "postgres", "params": {"max_connections": 100000}}]})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "services[0].params.max_connections"
    r = od_hub.rees("POST", "templates", json={
        "name": f"bad-svc-{od_hub.run}", "image-name": client_environment,
        "services": [{"name": "postgres", "params": {"colour": "red"}}]})
    assert r.status_code == 400 and "colour" in r.json()["error"], r.text
    # services count against the server's limits: they must leave it enough
    r = od_hub.rees("POST", "templates", json={
        "name": f"bad-svc-{od_hub.run}", "image-name": client_environment,
        "services": SERVICES, "limits": {"memory": "512M", "cpu": 2}})
    assert r.status_code == 400 and r.json()["field"] == "limits.memory", r.text
    assert "postgres 256M" in r.json()["error"] and "give at least 640M" in r.json()["error"]


def test_a_service_that_cannot_start_fails_the_launch_and_leaves_nothing(od_hub,
                                                                         client_environment):
    hub = od_hub
    user = f"svcbroken{hub.run}"  # a name DockerSpawner does not escape: volumes keep it
    name = f"broken-svc-{hub.run}"
    r = hub.rees("POST", "templates", json={
        "name": name, "image-name": client_environment,
        "services": [{"name": "postgres"}], "limits": {"cpu": 1, "memory": "1G"}})
    assert r.status_code == 201, r.text
    # the user's PostgreSQL data folder is broken (a PG_VERSION and nothing else):
    # PostgreSQL refuses to start on it
    volume = f"rees-od{hub.run}-{user}-postgres"
    engine = docker.from_env()
    engine.volumes.create(volume)
    engine.containers.run(server_image(hub, client_environment),
                          ["sh", "-c", "mkdir -p /v/pg15 && echo 9.6 > /v/pg15/PG_VERSION && "
                           "chown -R 999:999 /v && chmod 700 /v/pg15"],
                          volumes={volume: {"bind": "/v"}}, user="root", entrypoint=[],
                          remove=True)
    token = hub.user_token(user)
    r = hub.rees("POST", f"applications/{name}", token=token)
    assert r.status_code == 201, r.text
    server_name = r.json()["id"]
    progress = requests.get(f"{hub.url}/hub/api/users/{user}/servers/{server_name}/progress",
                            headers={"Authorization": f"token {token}"}, stream=True,
                            timeout=300)
    events = [line for line in progress.iter_lines(decode_unicode=True)
              if line.startswith("data:")]
    assert events and '"failed": true' in events[-1], events[-3:]
    assert "postgres service did not start" in events[-1]
    assert any("starting postgres 15" in e for e in events[:-1]), events  # as it went
    assert "could not access the server configuration file" in events[-1], events[-1]
    wait_for(lambda: server_name not in hub.request("GET", f"/hub/api/users/{user}").json()
          ["servers"] or not hub.request("GET", f"/hub/api/users/{user}").json()[
              "servers"][server_name]["pending"], 60, "the launch ends")
    left = engine.containers.list(all=True, filters={"label": f"org.tljh-rees.user={user}"})
    assert not left, [c.name for c in left]
    assert not [n for n in engine.networks.list() if n.name.endswith("--services")
                and user in n.name]


def server_image(hub, environment):
    return hub.rees("GET", f"environments/{environment}").json()["image"]


def test_pooled_servers_have_their_services_started_ahead(od_hub, template):
    hub = od_hub
    assert hub.rees("POST", f"pools/{template}", json={"size": 1}).status_code == 200
    wait_for(lambda: hub.rees("GET", f"pools/{template}").json()["available"] == 1, 300,
          "the pooled server with its services")
    waiting = [u["name"] for u in hub.request("GET", "/hub/api/users").json()
               if u["name"].startswith("anon-") and u["servers"].get("", {}).get("ready")]
    r = requests.post(f"{hub.service_url}/api/applications/{template}",
                      headers={"X-Forwarded-For": "198.51.100.40"}, timeout=60)
    app = r.json()
    assert r.status_code == 201 and app["pooled"] and app["id"] in waiting, r.text
    server = server_of(hub, app["id"])
    assert {c.labels["org.tljh-rees.service"] for c in services_of(server)
            if c.status == "running"} == {"postgres", "redis"}
    code, out = run_in(server, 'psql "$DATABASE_URL" -tAc "select 40 + 2"')
    assert code == 0 and out.strip() == "42", out
    # a visitor's services keep nothing: their data are in memory, no volume is left behind
    postgres = next(c for c in services_of(server)
                    if c.labels["org.tljh-rees.service"] == "postgres")
    assert not [m for m in postgres.attrs["Mounts"] if m["Type"] == "volume"], \
        postgres.attrs["Mounts"]
    random_part = app["id"].removeprefix("anon-")  # DockerSpawner escapes the '-'
    assert not docker.from_env().volumes.list(filters={"name": random_part})
    assert hub.rees("DELETE", f"pools/{template}").status_code == 204
    requests.delete(f"{hub.service_url}/api/applications/{template}/{app['id']}",
                    headers={"Authorization": f"token {app['token']}"}, timeout=60)
    wait_for(lambda: not services_of(server), 60, "the claimed server's services go with it")


def test_what_a_crash_left_of_a_servers_services_is_replaced(od_hub, template,
                                                             client_environment):
    """A Hub killed while a server ran leaves its services and their network: the next
    start of that server removes them first."""
    hub = od_hub
    user = f"svcleft{hub.run}"  # not escaped by DockerSpawner
    server_name = hub.rees("GET", f"templates/{template}").json()["name"][:30]
    escaped = escape(server_name, safe=set(string.ascii_lowercase + string.digits),
                     escape_char="-").lower()  # as DockerSpawner names containers
    container = f"{hub.container_prefix()}{user}--{escaped}"
    engine = docker.from_env()
    network = engine.networks.create(f"{container}--services", internal=True)
    image = server_image(hub, client_environment)
    stale = engine.containers.run(image, ["sleep", "600"], entrypoint=[], detach=True,
                                  network=network.name, name=f"{container}--postgres",
                                  labels={"org.tljh-rees.services-of": container})
    app = launch(hub, user, template)
    assert app["id"] == server_name
    server = server_of(hub, user)
    assert server.name == container
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(stale.id)
    code, out = run_in(server, 'psql "$DATABASE_URL" -tAc "select 1"')
    assert code == 0 and out.strip() == "1", out
    stop(hub, user, app, template)


def test_a_service_that_stops_between_two_looks_is_reported_as_stopped(od_hub,
                                                                        client_environment):
    """The health check of a container that has just exited gets an engine error (409 or
    500, by when it exited), not a crash of the launch: it counts as not healthy, and the
    runner's next look reports that the service stopped."""
    engine = docker.from_env()
    exited = engine.containers.run(server_image(od_hub, client_environment),
                                   ["sh", "-c", "exit 1"], entrypoint=[], detach=True)
    try:
        exited.wait(timeout=60)
        runner = ServiceRunner(engine.api, catalog=None, image_for=lambda k, v: "")
        assert runner._healthy(kind_named("postgres"), exited.id) is False
    finally:
        exited.remove(force=True)
