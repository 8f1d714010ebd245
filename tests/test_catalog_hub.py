"""The environment catalog against the real Hub, service, spawner and Docker engine,
tried as a hostile builder and as users whose rights come from scopes."""

from __future__ import annotations

import time

import docker

from tests.helpers import dockerfile_repo, server_container, wait_build, wait_ready


def build(hub, repo, name, token=None, **fields):
    r = hub.rees("POST", "builds", token=token, json={"repo": repo.url, "name": name, **fields})
    assert r.status_code in (200, 202), r.text
    done = wait_build(hub, r.json()["id"], token=token)
    assert done["status"] == "built", done
    return done


def test_labels_and_onbuild_in_a_builders_image_cannot_take_a_name(hub, unique, git_repo,
                                                                    base_image):
    """A builder writes another environment's name, owner and visibility into their image
    (LABEL, and ONBUILD for anything built FROM it) and then changes their own environment,
    which used to rebuild it FROM their image. Nobody may end up in the builder's image."""
    victim = unique("victim")
    victim_repo = git_repo()
    dockerfile_repo(victim_repo, base_image, marker="victim")
    victims = build(hub, victim_repo, victim, public=False)
    forged = " ".join(f"org.tljh-rees.{k}={v}" for k, v in
                      (("environment", victim), ("owner", "admin"), ("public", "true"),
                       ("build_id", "x"), ("repo", victim_repo.url),
                       ("commit", victims["commit"])))
    evil_repo = git_repo()
    evil_repo.commit({"Dockerfile": f"FROM {base_image}\nLABEL {forged}\nONBUILD LABEL {forged}\n"
                                    "ONBUILD RUN touch /pwned\n"})
    builder = hub.user_token("builder")
    evil = build(hub, evil_repo, unique("innocent"), token=builder)
    r = hub.rees("PATCH", f"environments/{unique('innocent')}", token=builder,
                 json={"public": False, "display_name": "changed"})
    assert r.status_code == 200, r.text
    # the victim's environment is unchanged and still the admin's, private
    env = hub.rees("GET", f"environments/{victim}").json()
    assert (env["owner"], env["public"], env["image"]) == ("admin", False, victims["image"])
    assert hub.rees("GET", f"environments/{victim}", token=builder).status_code == 404
    # a later build of the victim's repository and commit is not "cached" as the forgery
    again = hub.rees("POST", "builds", json={"repo": victim_repo.url, "name": unique("v2")})
    images = docker.from_env().images
    assert images.get(again.json()["image"]).id == images.get(victims["image"]).id
    assert images.get(evil["image"]).id != images.get(victims["image"]).id
    # launching the victim's environment runs the victim's image
    user = "admin"
    r = hub.request("POST", f"/hub/api/users/{user}/servers/{victim}",
                    json={"environment": victim})
    assert r.status_code in (201, 202), r.text
    try:
        wait_ready(hub, user, victim)
        assert server_container(hub, user, victim).attrs["Image"] == \
            images.get(victims["image"]).id
    finally:
        hub.request("DELETE", f"/hub/api/users/{user}/servers/{victim}", json={"remove": True})


def test_rees_admins_launch_private_environments_without_being_hub_admins(hub, unique,
                                                                           git_repo,
                                                                           base_image):
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="scoped")
    name = unique("private-for-admins")
    build(hub, repo, name, public=False)
    token = hub.user_token("reesadmin")
    assert hub.request("GET", "/hub/api/users/reesadmin").json()["admin"] is False
    assert hub.rees("GET", f"environments/{name}", token=token).status_code == 200
    r = hub.request("POST", f"/hub/api/users/reesadmin/servers/{name}", token=token,
                    json={"environment": name})
    assert r.status_code in (201, 202), r.text
    try:
        wait_ready(hub, "reesadmin", name, token=token)
    finally:
        hub.request("DELETE", f"/hub/api/users/reesadmin/servers/{name}",
                    json={"remove": True})
    outsider = unique("plain")
    r = hub.request("POST", f"/hub/api/users/{outsider}/servers/x",
                    token=hub.user_token(outsider), json={"environment": name})
    assert r.status_code == 404


def test_a_spawn_without_a_profile_gets_the_environments_own(hub, unique, git_repo,
                                                             base_image):
    """The Hub's spawn page and API spawns apply the same profile rule as launch links:
    the environment's default profile, not the site's."""
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="profiled")
    name = unique("medium-env")
    build(hub, repo, name, profile="medium")
    user = unique("profiled")
    token = hub.user_token(user)
    r = hub.request("POST", f"/hub/api/users/{user}/servers/{name}", token=token,
                    json={"environment": name})
    assert r.status_code in (201, 202), r.text
    try:
        wait_ready(hub, user, name, token=token)
        host = server_container(hub, user, name).attrs["HostConfig"]
        assert host["NanoCpus"] == 2 * 10**9 or host["CpuQuota"] == 2 * host["CpuPeriod"]
        assert host["Memory"] == 2 * 1024**3
    finally:
        hub.request("DELETE", f"/hub/api/users/{user}/servers/{name}", json={"remove": True})


def test_a_deleted_name_starts_clean_for_its_next_owner(hub, unique, git_repo, base_image):
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="first owner")
    name = unique("recycled")
    first = build(hub, repo, name, public=False)
    assert hub.rees("GET", f"builds/{first['id']}/log").status_code == 200
    assert hub.rees("DELETE", f"environments/{name}").status_code == 204
    builder = hub.user_token("builder")
    other = git_repo()
    dockerfile_repo(other, base_image, marker="second owner")
    second = build(hub, other, name, token=builder)
    env = hub.rees("GET", f"environments/{name}", token=builder).json()
    assert env["owner"] == "builder" and env["public"] is True
    assert [b["id"] for b in hub.rees("GET", "builds", token=builder,
                                      params={"environment": name}).json()["builds"]] \
        == [second["id"]]
    assert hub.rees("GET", f"builds/{first['id']}", token=builder).status_code == 404
    assert hub.rees("GET", f"builds/{first['id']}/log").status_code == 404  # admin too


def test_an_image_removed_shows_and_the_next_launch_builds_it_again(hub, unique, git_repo,
                                                                      base_image):
    """The catalog keeps in step with the engine (here every 2 s, set in the demo's
    rees_config.py, which also shows that the admin's config file is read); a launch of an
    environment whose image was removed (by hand here, by the disk garbage collector
    usually) builds it again at its commit, as its owner."""
    repo = git_repo()
    dockerfile_repo(repo, base_image, marker="removed")
    name = unique("removed")
    done = build(hub, repo, name)
    docker.from_env().images.remove(done["image"], force=True)
    deadline = time.monotonic() + 20
    while hub.rees("GET", f"environments/{name}").json()["status"] != "missing":
        assert time.monotonic() < deadline, "the catalog did not notice the removed image"
        time.sleep(0.5)
    repo.commit({"later.txt": "a commit after the build\n"})  # the rebuild takes the old one
    token = hub.user_token(unique("relauncher"))
    r = hub.rees("POST", "applications", token=token, json={"environment": name})
    assert r.status_code == 409 and "being built again" in r.json()["error"], r.text
    rebuild = hub.rees("GET", "builds", params={"environment": name}).json()["builds"][0]
    assert rebuild["id"] in r.json()["error"] and rebuild["commit"] == done["commit"]
    assert rebuild["owner"] == done["owner"]
    again = wait_build(hub, rebuild["id"])
    assert again["status"] == "built" and again["cache_hit"] is False
    assert hub.rees("GET", f"environments/{name}").json()["status"] == "built"
    r = hub.rees("POST", "applications", token=token, json={"environment": name})
    assert r.status_code == 201, r.text
    hub.rees("DELETE", f"servers/{r.json()['id']}", token=token)
