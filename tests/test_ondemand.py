"""On-demand launches (seed 004) against a real Hub, proxy and dockerd: templates, warm
pools, anonymous launches with their tokens, culling by a template's timeouts, the caps,
and a restart of the service with a pool running.

A Hub of its own, ``od_hub`` (in conftest.py, shared with tests/test_client.py), with
anonymous launches on (the session's Hub has them off), and the service's loops quickened
through the admin's ``rees_config.py``.
"""

from __future__ import annotations

import os
import signal
import time

import docker
import requests

from tests.helpers import wait_for

CULL_AFTER = 6  # seconds: the templates' cull-timeout here
LIMITS = {"cpu": 0.5, "memory": "512M"}



def register(hub, name, od_environment, token=None, **fields):
    r = hub.rees("POST", "templates", token=token, json={
        "name": name, "image-name": od_environment, "limits": LIMITS, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def anonymous(hub, method, path, token=None, address=None, **kwargs):
    """A request with no login (or with an anonymous application's own token)."""
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"token {token}"
    if address:  # as TLJH's traefik says who the client is
        headers["X-Forwarded-For"] = address
    return requests.request(method, f"{hub.service_url}/api/{path}", headers=headers,
                            timeout=60, **kwargs)


def hub_user(hub, name):
    return hub.request("GET", f"/hub/api/users/{name}")


def containers_of(hub, user):
    return docker.from_env().containers.list(all=True, filters={
        "label": f"org.tljh-rees.user={user}"})


def test_templates_are_registered_checked_and_changed(od_hub, od_environment):
    hub = od_hub
    name = f"course-{hub.run}"
    body = register(hub, name, od_environment, token=hub.user_token("builder"),
                    **{"cull-timeout": 600, "allowed-users": ["ada"]})
    assert body["image-name"] == od_environment and body["image-kind"] == "environment"
    assert body["limits"] == {"memory": "512M", "cpu": 0.5}
    assert body["status"] == "completed" and body["owner"] == "builder"
    assert body["time-created"] and body["time-modified"]
    assert hub.rees("GET", f"templates/{name}/status").json() == {"status": "completed"}
    # who may launch it: ada and the owner see it, another user does not
    assert hub.rees("GET", f"templates/{name}", token=hub.user_token("ada")).status_code == 200
    assert hub.rees("GET", f"templates/{name}",
                    token=hub.user_token("zed")).status_code == 404
    # a plain user may not register, and bad fields are named
    r = hub.rees("POST", "templates", token=hub.user_token("zed"),
                 json={"image-name": od_environment})
    assert r.status_code == 403 and "build permission" in r.json()["error"]
    for fields, field in (({"limits": {"cpu": 64}}, "limits.cpu"),
                          ({"limits": {"memory": "9T"}}, "limits.memory"),
                          ({"cull-timeout": -1}, "cull-timeout"),
                          ({"services": [{"name": "spark", "version": "1.4.1"}]},
                           "services[0].name"),
                          ({"colour": "red"}, "colour"),
                          ({"command": "ipython notebook"}, "command")):
        r = hub.rees("POST", "templates", json={"name": f"bad-{hub.run}",
                                                "image-name": od_environment, **fields})
        assert r.status_code == 400 and r.json()["field"] == field, (fields, r.text)
    r = hub.rees("POST", "templates", json={"image-name": "no-such-environment"})
    assert r.status_code == 400 and r.json()["field"] == "image-name"
    assert hub.rees("POST", "templates", json={"name": name, "image-name": od_environment}
                    ).status_code == 409
    # the owner changes it; others may not
    r = hub.rees("PATCH", f"templates/{name}", token=hub.user_token("ada"),
                 json={"anonymous": True})
    assert r.status_code == 403
    r = hub.rees("PATCH", f"templates/{name}", token=hub.user_token("builder"),
                 json={"max-age": 7200, "allowed-users": []})
    assert r.status_code == 200 and r.json()["max-age"] == 7200
    assert r.json()["time-modified"] > body["time-modified"]
    assert name in [t["name"] for t in hub.rees("GET", "templates",
                                                token=hub.user_token("zed")).json()["templates"]]
    assert hub.rees("DELETE", f"templates/{name}").status_code == 204
    assert hub.rees("GET", f"templates/{name}").status_code == 404


def test_a_pool_serves_anonymous_launches_refills_and_its_claims_are_culled(od_hub,
                                                                           od_environment):
    hub = od_hub
    name = f"try-{hub.run}"
    register(hub, name, od_environment, anonymous=True, **{"cull-timeout": CULL_AFTER})
    r = hub.rees("POST", f"pools/{name}", json={"size": 2})
    assert r.status_code == 200 and r.json()["size"] == 2, r.text
    wait_for(lambda: hub.rees("GET", f"pools/{name}").json()["available"] == 2, 180,
          "the pool's two servers are ready")
    pooled = {u["name"] for u in hub.request("GET", "/hub/api/users").json()
              if u["name"].startswith("anon-")}

    started = time.monotonic()
    r = anonymous(hub, "POST", f"applications/{name}")
    app = r.json()
    assert r.status_code == 201 and app["pooled"] and app["ready"], r.text
    # it answers through the proxy with the returned token, and without it does not
    status = requests.get(f"{hub.url}{app['location']}api/status",
                          headers={"Authorization": f"token {app['token']}"}, timeout=30)
    claimed_in = time.monotonic() - started
    assert status.status_code == 200, status.text
    assert requests.get(f"{hub.url}{app['location']}api/status", allow_redirects=False,
                        timeout=30).status_code in (302, 403)
    # as Binder clients open it: the token in the URL
    assert requests.get(f"{hub.url}{app['location']}api/status",
                        params={"token": app["token"]}, timeout=30).status_code == 200
    print(f"pooled launch answered in {claimed_in:.2f} s")
    assert app["id"] in pooled and app["id"].startswith("anon-")
    # the token sees its own application, and nothing of anyone else's
    mine = anonymous(hub, "GET", f"applications/{name}/{app['id']}", token=app["token"])
    assert mine.status_code == 200 and mine.json()["ready"] is True
    others = anonymous(hub, "GET", "environments", token=app["token"])
    assert others.status_code == 200  # a signed-in caller of the service, no more
    assert anonymous(hub, "POST", "applications", token=app["token"],
                     json={"environment": od_environment}).status_code == 403
    # no personal storage: no volume of the Hub's users is mounted
    (container,) = containers_of(hub, app["id"])
    assert not [m for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    # the pool refills, with new users
    wait_for(lambda: hub.rees("GET", f"pools/{name}").json()["available"] == 2, 180,
          "the pool refills")
    pool = hub.rees("GET", f"pools/{name}").json()
    assert pool["claimed-last-hour"] >= 1 and pool["running"] >= 3
    # idle past the template's cull-timeout: culled, and its temporary user removed
    wait_for(lambda: hub_user(hub, app["id"]).status_code == 404, CULL_AFTER + 30,
          "the claimed server is culled and its user removed")
    assert not containers_of(hub, app["id"])
    assert anonymous(hub, "GET", f"applications/{name}/{app['id']}",
                     token=app["token"]).status_code in (403, 404)  # gone, token too
    # unclaimed pooled servers are not culled for being idle
    time.sleep(CULL_AFTER + 2)
    assert hub.rees("GET", f"pools/{name}").json()["available"] == 2
    # deleting the pool stops its unclaimed servers
    waiting = [u["name"] for u in hub.request("GET", "/hub/api/users").json()
               if u["name"].startswith("anon-")]
    assert hub.rees("DELETE", f"pools/{name}").status_code == 204
    for user in waiting:
        assert hub_user(hub, user).status_code == 404
        wait_for(lambda user=user: not containers_of(hub, user), 30, f"{user}'s container goes")
    assert hub.rees("GET", f"pools/{name}").status_code == 404


def test_a_signed_in_launch_gets_a_named_server_with_storage_and_is_culled(od_hub,
                                                                          od_environment):
    hub = od_hub
    name = f"lesson-{hub.run}"
    register(hub, name, od_environment, **{"cull-timeout": CULL_AFTER})
    token = hub.user_token("ada")
    r = hub.rees("POST", f"applications/{name}", token=token)
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["template"] == name and "token" not in app
    assert app["location"].startswith(f"/user/ada/{app['id']}")
    wait_for(lambda: hub.rees("GET", f"applications/{name}/{app['id']}", token=token)
          .json()["ready"], 120, "ada's server is ready")
    assert [a["id"] for a in hub.rees("GET", f"applications/{name}", token=token)
            .json()["applications"]] == [app["id"]]
    # an admin sees it among everyone's
    every = hub.rees("GET", f"applications/{name}").json()["applications"]
    assert [(a["user"], a["id"]) for a in every] == [("ada", app["id"])]
    (container,) = [c for c in containers_of(hub, "ada")
                    if c.labels.get("org.tljh-rees.template") == name]
    assert [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"] == \
        [f"rees-od{hub.run}-ada"]
    host = container.attrs["HostConfig"]
    assert host["CpuQuota"] == 50_000 and host["CpuPeriod"] == 100_000
    assert host["Memory"] == 512 * 1024**2
    # culled after its template's timeout; ada stays a user
    wait_for(lambda: app["id"] not in hub_user(hub, "ada").json()["servers"], CULL_AFTER + 30,
          "ada's idle server is culled")
    assert hub_user(hub, "ada").status_code == 200


def test_anonymous_launches_only_of_anonymous_templates(od_hub, hub, od_environment):
    private = f"signed-in-only-{od_hub.run}"
    register(od_hub, private, od_environment)
    r = anonymous(od_hub, "POST", f"applications/{private}")
    assert r.status_code == 404 and "anonymous" in r.json()["error"]
    r = anonymous(od_hub, "POST", f"applications/{private}",
                  headers={"Authorization": "token not-a-token"})
    assert r.status_code == 403 and "not accepted" in r.json()["error"]
    # the session's Hub has anonymous launches off
    r = anonymous(hub, "POST", "applications/anything")
    assert r.status_code == 403 and "rees.anonymous.enabled" in r.json()["error"]


def test_caps_answer_429_naming_the_cap(od_hub, od_environment):
    """launches_per_hour is 2 per address, max_servers 3 in all; ``capped`` allows 2."""
    hub = od_hub
    capped, free = f"capped-{hub.run}", f"free-{hub.run}"
    register(hub, capped, od_environment, anonymous=True, **{"max-servers": 2})
    register(hub, free, od_environment, anonymous=True)
    launched = []

    def launch(template, address):
        r = anonymous(hub, "POST", f"applications/{template}", address=address)
        if r.status_code == 201:
            launched.append((template, r.json()))
        return r

    try:
        assert launch(capped, "203.0.113.1").status_code == 201
        assert launch(capped, "203.0.113.1").status_code == 201
        r = launch(capped, "203.0.113.1")  # a third from that address
        assert r.status_code == 429 and "launches_per_hour" in r.json()["error"], r.text
        assert 3000 < int(r.headers["Retry-After"]) <= 3600
        r = launch(capped, "203.0.113.2")  # the template's own cap
        assert r.status_code == 429 and "max-servers" in r.json()["error"], r.text
        assert launch(free, "203.0.113.2").status_code == 201
        r = launch(free, "203.0.113.3")  # three anonymous servers in all
        assert r.status_code == 429 and "rees.anonymous.max_servers" in r.json()["error"]
        assert int(r.headers["Retry-After"]) > 0
    finally:
        for template, app in launched:
            r = anonymous(hub, "DELETE", f"applications/{template}/{app['id']}",
                          token=app["token"])
            assert r.status_code == 202, r.text
    for _, app in launched:
        assert hub_user(hub, app["id"]).status_code == 404
    # room again: the cap counts servers in use, not past ones
    r = launch(free, "203.0.113.4")
    assert r.status_code == 201, r.text
    assert anonymous(hub, "DELETE", f"applications/{free}/{r.json()['id']}",
                     token=r.json()["token"]).status_code == 202


def test_pools_never_exceed_the_machine(od_hub, od_environment):
    name = f"huge-{od_hub.run}"
    register(od_hub, name, od_environment, anonymous=True)
    cpus = os.cpu_count()
    r = od_hub.rees("POST", f"pools/{name}", json={"size": int(cpus / 0.5) + 1})
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert f"{cpus:g} CPUs" in error and "more than this machine has" in error
    assert od_hub.rees("POST", f"pools/{name}", json={"size": -1}).status_code == 400
    r = od_hub.rees("POST", f"pools/{name}", json={"size": 1},
                    token=od_hub.user_token("builder"))
    assert r.status_code == 403 and "admins" in r.json()["error"]


def test_a_pool_survives_a_restart_of_the_service(od_hub, od_environment):
    hub = od_hub
    name = f"steady-{hub.run}"
    register(hub, name, od_environment, anonymous=True)
    assert hub.rees("POST", f"pools/{name}", json={"size": 1}).status_code == 200
    wait_for(lambda: hub.rees("GET", f"pools/{name}").json()["available"] == 1, 180,
          "the pool's server is ready")
    before = {u["name"] for u in hub.request("GET", "/hub/api/users").json()
              if u["name"].startswith("anon-")}
    pid = hub.request("GET", "/hub/api/services").json()["rees"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: hub.request("GET", "/hub/api/services").json()["rees"]["pid"]
          not in (pid, 0), 60, "the Hub starts the service again")
    wait_for(lambda: hub.rees("GET", f"pools/{name}").status_code == 200, 60,
          "the service answers again")
    pool = wait_for(lambda: (p := hub.rees("GET", f"pools/{name}").json())["available"] == 1
                 and p, 60, "the pool is adopted")
    assert pool["starting"] == 0
    after = {u["name"] for u in hub.request("GET", "/hub/api/users").json()
             if u["name"].startswith("anon-")}
    assert after == before  # adopted, not replaced
    r = anonymous(hub, "POST", f"applications/{name}", address="203.0.113.9")
    assert r.status_code == 201 and r.json()["pooled"], r.text
    assert r.json()["id"] in before
    assert hub.rees("DELETE", f"templates/{name}").status_code == 204
    wait_for(lambda: all(hub_user(hub, u).status_code == 404 for u in before | {r.json()["id"]}),
          30, "a deleted template's temporary users go with it")


def test_a_try_link_is_a_page_that_starts_nothing_by_itself(od_hub, od_environment):
    hub = od_hub
    name = f"try-page-{hub.run}"
    register(hub, name, od_environment, anonymous=True, **{"cull-timeout": 600})
    before = {u["name"] for u in hub.request("GET", "/hub/api/users").json()}
    r = requests.get(f"{hub.service_url}/try/{name}", params={"labpath": "marker.txt"},
                     timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert f'data-api="/services/rees/api/applications/{name}"' in r.text
    assert 'data-urlpath="doc/tree/marker.txt"' in r.text and "10 min" in r.text
    assert {u["name"] for u in hub.request("GET", "/hub/api/users").json()} == before
    r = requests.get(f"{hub.service_url}/try/{name}", params={"urlpath": "javascript:x"},
                     timeout=30)
    assert r.status_code == 400 and "<script" not in r.text
    signed_in_only = f"try-closed-{hub.run}"
    register(hub, signed_in_only, od_environment)
    assert requests.get(f"{hub.service_url}/try/{signed_in_only}",
                        timeout=30).status_code == 404
