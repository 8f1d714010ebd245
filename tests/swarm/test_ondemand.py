"""Templates, warm pools, anonymous launches, culling and quotas in multi-node mode, on
the real swarm of tests/swarm/conftest.py.

The same code as on one machine decides who may launch what; what changes is the
capacity (a server must fit the largest node, pools may fill all of them) and that every
server is a Swarm service somewhere in the swarm.
"""

from __future__ import annotations

import json

import requests

from tests.helpers import wait_for, wait_ready
from tests.swarm.conftest import RUN
from tests.swarm_support import run

CULL_AFTER = 6  # seconds: the pooled template's cull-timeout


def usable_nodes() -> list[dict]:
    """What the manager says of each ready, active node (as the service reads it)."""
    ids = run("docker", "node", "ls", "-q").stdout.split()
    nodes = json.loads(run("docker", "node", "inspect", *ids).stdout)
    return [n for n in nodes if n["Status"]["State"] == "ready"
            and n["Spec"]["Availability"] == "active"]


def services_of(user: str) -> list[dict]:
    """The Swarm services of ``user``'s servers (their labels are the server's)."""
    ids = run("docker", "service", "ls", "-q", "--filter",
              f"label=org.tljh-rees.user={user}").stdout.split()
    return json.loads(run("docker", "service", "inspect", *ids).stdout) if ids else []


def anonymous(hub, method, path, token=None, **kwargs):
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.request(method, f"{hub.service_url}/api/{path}", headers=headers,
                            timeout=60, **kwargs)


def test_templates_and_pools_are_sized_by_the_nodes(swarm_hub, environment):
    nodes = usable_nodes()
    largest = max(n["Description"]["Resources"]["NanoCPUs"] for n in nodes) / 1e9
    total = sum(n["Description"]["Resources"]["NanoCPUs"] for n in nodes) / 1e9
    assert len(nodes) >= 3 and total > largest  # more than one node to fill
    name = f"big-{RUN}"
    # one server runs on one node: its limits must fit the largest
    r = swarm_hub.rees("POST", "templates", json={
        "name": name, "image-name": environment[0], "anonymous": True,
        "limits": {"cpu": largest + 1, "memory": "256M"}})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "limits.cpu"
    assert f"from 0.01 to {largest:g} (the largest node's)" in r.json()["error"]
    r = swarm_hub.rees("POST", "templates", json={
        "name": name, "image-name": environment[0], "anonymous": True,
        "limits": {"cpu": largest, "memory": "256M"}})
    assert r.status_code == 201, r.text
    # pools together may take every node: more than one node's CPUs is allowed...
    fits = int(total // largest)
    assert fits > 1
    # ...but not more than all of them have (checked without starting anything)
    r = swarm_hub.rees("POST", f"pools/{name}", json={"size": fits + 1})
    assert r.status_code == 409, r.text
    assert f"more than the swarm's ready nodes have ({total:g} CPUs" in r.json()["error"]
    assert swarm_hub.rees("DELETE", f"templates/{name}").status_code == 204


def test_a_pool_on_the_swarm_serves_anonymous_launches_and_is_culled(swarm_hub,
                                                                     environment):
    name = f"try-{RUN}"
    r = swarm_hub.rees("POST", "templates", json={
        "name": name, "image-name": environment[0], "anonymous": True,
        "limits": {"cpu": 0.5, "memory": "256M"}, "cull-timeout": CULL_AFTER})
    assert r.status_code == 201, r.text
    r = swarm_hub.rees("POST", f"pools/{name}", json={"size": 2})
    assert r.status_code == 200, r.text
    wait_for(lambda: swarm_hub.rees("GET", f"pools/{name}").json()["available"] == 2, 300,
             "the pool's two servers are ready", every=1)
    pooled = [u["name"] for u in swarm_hub.request("GET", "/hub/api/users").json()
              if u["name"].startswith("anon-")]
    assert len(pooled) == 2
    for user in pooled:  # each a Swarm service, limited, with no storage of anyone's
        (service,) = services_of(user)
        task = service["Spec"]["TaskTemplate"]
        assert task["Resources"]["Limits"] == {"NanoCPUs": 5 * 10**8,
                                               "MemoryBytes": 256 * 2**20}
        assert not task["ContainerSpec"].get("Mounts")
        assert service["Spec"]["Labels"]["org.tljh-rees.template"] == name

    r = anonymous(swarm_hub, "POST", f"applications/{name}")
    app = r.json()
    assert r.status_code == 201 and app["pooled"] and app["ready"], r.text
    assert app["id"] in pooled
    status = requests.get(f"{swarm_hub.url}{app['location']}api/status",
                          params={"token": app["token"]}, timeout=30)
    assert status.status_code == 200, status.text
    # the pool refills with a new server; the claimed one is culled when idle, with its
    # Swarm service and its temporary user
    wait_for(lambda: swarm_hub.rees("GET", f"pools/{name}").json()["available"] == 2, 300,
             "the pool refills", every=1)
    wait_for(lambda: swarm_hub.request("GET", f"/hub/api/users/{app['id']}").status_code
             == 404, CULL_AFTER + 60, "the claimed server is culled", every=1)
    wait_for(lambda: not services_of(app["id"]), 30, "its service is removed")
    # deleting the pool stops the waiting servers and removes their services
    waiting = [u["name"] for u in swarm_hub.request("GET", "/hub/api/users").json()
               if u["name"].startswith("anon-")]
    assert swarm_hub.rees("DELETE", f"pools/{name}").status_code == 204
    for user in waiting:
        wait_for(lambda user=user: not services_of(user), 60, f"{user}'s service goes")


def test_the_server_quota_counts_servers_on_every_node(swarm_hub, environment):
    user = f"dana{RUN}"
    token = swarm_hub.user_token(user)
    started = []
    try:
        for server, profile in (("one", "large"), ("two", "small")):
            r = swarm_hub.rees("POST", "applications", token=token, json={
                "environment": environment[0], "server_name": server, "profile": profile})
            assert r.status_code == 201, r.text
            started.append(server)
            wait_ready(swarm_hub, user, server, token=token, timeout=300)
        # the first went to the labelled worker (and made the home node there): the
        # second followed the files
        nodes = {s["Spec"]["Labels"]["org.tljh-rees.server-name"]: s for s in services_of(user)}
        assert set(nodes) == {"one", "two"}
        r = swarm_hub.rees("POST", "applications", token=token,
                           json={"environment": environment[0], "server_name": "three"})
        assert r.status_code == 429, r.text
        error = r.json()["error"]
        assert "rees.quotas.servers_per_user" in error and "you have 2 server(s)" in error
        assert not [s for s in services_of(user)
                    if s["Spec"]["Labels"]["org.tljh-rees.server-name"] == "three"]
    finally:
        for server in started:
            swarm_hub.request("DELETE", f"/hub/api/users/{user}/servers/{server}",
                              token=token)
    wait_for(lambda: not services_of(user), 60, "dana's services are removed")


def test_a_template_of_a_plain_image_runs_on_a_worker(lab, swarm_hub, base_image):
    """An image the admin allows exists only on the manager: the Hub pushes it to the
    registry (once), and the server runs it by digest wherever it lands."""
    name = f"plain-{RUN}"
    r = swarm_hub.rees("POST", "templates", json={
        "name": name, "image-name": base_image, "anonymous": True,
        "limits": {"cpu": 0.5, "memory": "256M"}})
    assert r.status_code == 201 and r.json()["image-kind"] == "image", r.text
    r = anonymous(swarm_hub, "POST", f"applications/{name}")
    assert r.status_code == 201, r.text
    app = r.json()
    wait_for(lambda: anonymous(swarm_hub, "GET", f"applications/{name}/{app['id']}",
                               token=app["token"]).json()["ready"], 300,
             "the plain image's server is ready", every=1)
    (service,) = services_of(app["id"])
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert image.startswith(f"{swarm_hub.registry}/rees/") and "@sha256:" in image, image
    status = requests.get(f"{swarm_hub.url}{app['location']}api/status",
                          params={"token": app["token"]}, timeout=30)
    assert status.status_code == 200, status.text
    assert anonymous(swarm_hub, "DELETE", f"applications/{name}/{app['id']}",
                     token=app["token"]).status_code in (200, 202, 204)
    wait_for(lambda: not services_of(app["id"]), 60, "its service is removed")
