"""Launching built environments: real Hub, proxy, DockerSpawner, Docker limits, volumes."""

import time
import urllib.parse

import docker
import pytest

from tests.helpers import (dockerfile_repo, server_container, stop_server, wait_build,
                           wait_ready)


@pytest.fixture(scope="module")
def environments(hub, base_image, tmp_path_factory, run_id):
    """Two built environments: (name, marker file content) each."""
    from tests.helpers import GitRepo

    built = []
    for marker in ("alpha", "beta"):
        repo = GitRepo(str(tmp_path_factory.mktemp(marker) / "repo"))
        dockerfile_repo(repo, base_image, marker=marker)
        name = f"launch-{marker}-{run_id}"
        build = hub.rees("POST", "builds", json={"repo": repo.url, "name": name}).json()
        assert wait_build(hub, build["id"])["status"] == "built"
        built.append(name)
    return built


def contents(hub, user, server, path, token, method="GET", **kwargs):
    return hub.request(method, f"/user/{user}/{server}/api/contents/{path}", token=token,
                       **kwargs)


def test_launch_with_limits_storage_and_two_environments(hub, environments, unique):
    alpha, beta = environments
    user = unique("carol")
    token = hub.user_token(user)
    r = hub.rees("POST", "applications", token=token,
                 json={"environment": alpha, "profile": "small"})
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["id"] == alpha and app["location"] == f"/user/{user}/{alpha}/"
    wait_ready(hub, user, alpha, token=token)
    assert hub.request("GET", f"/user/{user}/{alpha}/api/status", token=token).status_code == 200

    # the profile's limits are Docker's limits
    container = server_container(hub, user, alpha)
    host = container.attrs["HostConfig"]
    assert host["Memory"] == 1024**3
    assert host["CpuQuota"] == 100_000 and host["CpuPeriod"] == 100_000
    # what servers of Binder links get (tests/test_binder.py), others do not
    assert not any("allow_origin" in arg for arg in container.attrs["Args"])
    assert "JUPYTERHUB_ALLOW_TOKEN_IN_URL=1" not in container.attrs["Config"]["Env"]

    # the admin's dataset is mounted read-only
    code, out = container.exec_run("cat /data/datasets/survey.csv")
    assert code == 0 and b"north,12" in out
    code, out = container.exec_run("touch /data/datasets/new")
    assert code != 0 and b"Read-only" in out

    # the repository's files are there, and ~/work is the persistent volume
    assert "alpha" in contents(hub, user, alpha, "marker.txt", token).json()["content"]
    r = contents(hub, user, alpha, "work/notes.txt", token, method="PUT",
                 json={"type": "file", "format": "text", "content": "kept"})
    assert r.status_code in (200, 201), r.text

    # a second named server in another environment, at the same time
    r = hub.rees("POST", "applications", token=token, json={"environment": beta})
    assert r.status_code == 201, r.text
    wait_ready(hub, user, beta, token=token)
    listed = hub.rees("GET", "applications", token=token).json()["applications"]
    assert {a["environment"] for a in listed if a["ready"]} == {alpha, beta}
    assert "beta" in contents(hub, user, beta, "marker.txt", token).json()["content"]
    assert contents(hub, user, beta, "work/notes.txt", token).json()["content"] == "kept"

    # stop and start again: the file is still there
    assert hub.rees("DELETE", f"servers/{alpha}", token=token).status_code == 202
    stop_server(hub, user, alpha, token)
    hub.rees("POST", "applications", token=token, json={"environment": alpha})
    wait_ready(hub, user, alpha, token=token)
    assert contents(hub, user, alpha, "work/notes.txt", token).json()["content"] == "kept"
    for server in (alpha, beta):
        stop_server(hub, user, server, token)


@pytest.mark.parametrize("options", [
    {"image": "busybox"},
    {"cmd": ["sh", "-c", "id"]},
    {"volumes": {"/": {"bind": "/host"}}},
])
def test_images_mounts_and_commands_are_refused(hub, environments, unique, options):
    user = unique("mallory")
    token = hub.user_token(user)
    body = {"environment": environments[0], **options}
    r = hub.request("POST", f"/hub/api/users/{user}/servers/evil", token=token, json=body)
    if r.status_code < 400:  # the Hub may answer before start() has run: wait for the end
        deadline = time.monotonic() + 60
        while True:
            state = hub.request("GET", f"/hub/api/users/{user}", token=token).json()
            server = state["servers"].get("evil")
            if server is None or not server.get("pending"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert server is None or not server["ready"]
    else:
        assert "Only 'environment' and 'profile'" in r.json()["message"]
    assert not docker.from_env().containers.list(
        filters={"label": f"org.tljh-rees.user={user}"})
    # the service's API refuses them before reaching the Hub
    r = hub.rees("POST", "applications", token=token, json=body)
    assert r.status_code == 400 and "Unknown field" in r.json()["error"]


def test_unknown_environment_and_profile(hub, environments, unique):
    token = hub.user_token(unique("dave"))
    r = hub.rees("POST", "applications", token=token, json={"environment": "no-such-env"})
    assert r.status_code == 404 and r.json()["field"] == "environment"
    r = hub.rees("POST", "applications", token=token,
                 json={"environment": environments[0], "profile": "gigantic"})
    assert r.status_code == 400 and r.json()["field"] == "profile"


def test_a_launch_link_starts_nothing_until_the_user_confirms(hub, environments, unique):
    """A link can come from any page: opening it shows what would start; only the posted
    form (the user's click) starts the server, which then opens ``urlpath``."""
    env = environments[1]
    user = unique("erin")
    token = hub.user_token(user)
    r = hub.request("GET", f"/services/rees/launch/{env}?urlpath=lab/tree/marker.txt",
                    token=token, allow_redirects=False)
    assert r.status_code == 200 and 'id="launch-start"' in r.text
    assert 'name="urlpath" value="lab/tree/marker.txt"' in r.text
    assert hub.request("GET", f"/hub/api/users/{user}", token=token).json()["servers"] == {}
    # (the Hub's own spawn URL with options in its query: ui-tests/test_launch_ui.py)

    r = hub.request("POST", f"/services/rees/launch/{env}", token=token,
                    data={"urlpath": "lab/tree/marker.txt"}, allow_redirects=False)
    assert r.status_code == 302, r.text
    target = urllib.parse.urlsplit(r.headers["Location"])
    next_url = f"/user/{user}/{env}/lab/tree/marker.txt"
    assert target.path in (f"/hub/spawn-pending/{user}/{env}", next_url)
    if target.path != next_url:
        assert urllib.parse.parse_qs(target.query)["next"] == [next_url]
    wait_ready(hub, user, env, token=token)
    # once it runs, the link goes straight to it
    r = hub.request("GET", f"/services/rees/launch/{env}?urlpath=lab/tree/marker.txt",
                    token=token, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == next_url
    hub.request("DELETE", f"/hub/api/users/{user}/servers/{env}", token=token)
    # (following it in a browser is tested in ui-tests/test_launch_ui.py)
    r = hub.request("GET", "/services/rees/launch/nope", token=token, allow_redirects=False)
    assert r.status_code == 404


def test_a_token_that_may_not_start_servers_cannot_launch(hub, environments, unique):
    """The service holds admin:servers; it acts for a user only when their token could
    start the server itself."""
    user = unique("limited")
    hub.user_token(user)
    r = hub.request("POST", f"/hub/api/users/{user}/tokens",
                    json={"scopes": ["access:services!service=rees"], "note": "narrow"})
    assert r.status_code == 201, r.text
    narrow = r.json()["token"]
    assert hub.rees("GET", "environments", token=narrow).status_code == 200
    r = hub.rees("POST", "applications", token=narrow, json={"environment": environments[0]})
    assert r.status_code == 403 and f"servers!user={user}" in r.json()["error"]
    r = hub.request("POST", f"/services/rees/launch/{environments[0]}", token=narrow,
                    data={}, allow_redirects=False)
    assert r.status_code == 403
    assert hub.request("GET", f"/hub/api/users/{user}").json()["servers"] == {}


def test_tljh_idle_culler_stops_idle_environment_servers(base_image, tmp_path, git_repo):
    """TLJH registers jupyterhub-idle-culler before our hook runs; it still culls ours."""
    from tests.helpers import remove_built_images, start_demo_hub, stop_demo_hub

    state = str(tmp_path / "hub")
    proc, hub = start_demo_hub(state, {}, tljh_config={
        "services": {"cull": {"timeout": 10, "every": 5}}})
    try:
        assert "cull-idle" in hub.request("GET", "/hub/api/services").json()
        repo = git_repo()
        dockerfile_repo(repo, base_image, marker="idle")
        build = hub.rees("POST", "builds", json={"repo": repo.url, "name": "idle-env"}).json()
        assert wait_build(hub, build["id"])["status"] == "built"
        token = hub.user_token("idler")
        hub.rees("POST", "applications", token=token, json={"environment": "idle-env"})
        wait_ready(hub, "idler", "idle-env", token=token)
        deadline = time.monotonic() + 90
        while "idle-env" in hub.request("GET", "/hub/api/users/idler").json()["servers"] and \
                hub.request("GET", "/hub/api/users/idler").json()["servers"]["idle-env"]["ready"]:
            assert time.monotonic() < deadline, "the idle server was not culled"
            time.sleep(1)
    finally:
        stop_demo_hub(proc, hub)
        remove_built_images(f"{state}/rees/rees.sqlite")
