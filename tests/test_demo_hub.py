"""End to end: the demo Hub (the plugin's own configuration) runs real servers."""

import docker

from tests.helpers import wait_ready


def test_services_lists_rees(hub):
    r = hub.request("GET", "/hub/api/services")
    assert r.status_code == 200
    rees = r.json()["rees"]
    assert rees["prefix"] == "/services/rees/"
    assert "rees-service" in rees["roles"]


def test_user_server_starts_in_container_from_base_image(hub, base_image):
    token = hub.user_token("alice")
    r = hub.request("POST", "/hub/api/users/alice/server", token=token)
    assert r.status_code in (201, 202), r.text
    wait_ready(hub, "alice", token=token)
    status = hub.request("GET", "/user/alice/api/status", token=token)
    assert status.status_code == 200
    assert "started" in status.json()
    containers = docker.from_env().containers.list(
        filters={"name": f"{hub.container_prefix()}alice"})
    assert [c.image.tags[0] for c in containers] == [base_image]
    r = hub.request("DELETE", "/hub/api/users/alice/server", token=token)
    assert r.status_code in (202, 204)
