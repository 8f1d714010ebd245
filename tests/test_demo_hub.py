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


def test_nothing_is_left_running_when_the_hub_dies(base_image, tmp_path):
    """A Hub killed outright leaves neither its services (rees, the idle culler) nor its
    proxy behind (a new Hub must find their ports free)."""
    import os
    import signal
    import time

    from tests.helpers import start_demo_hub, stop_demo_hub

    proc, hub = start_demo_hub(str(tmp_path / "hub"), {})
    services = hub.request("GET", "/hub/api/services").json()
    service_pid, culler_pid = services["rees"]["pid"], services["cull-idle"]["pid"]
    with open(tmp_path / "hub" / "proxy.pid") as f:
        proxy_pid = int(f.read())
    with open(tmp_path / "hub" / "jupyterhub.pid") as f:
        hub_pid = int(f.read())
    try:
        os.kill(hub_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(os.path.exists(f"/proc/{pid}") and not _zombie(pid)
                  for pid in (service_pid, culler_pid, proxy_pid)):
            assert time.monotonic() < deadline, "a service or the proxy outlived the Hub"
            time.sleep(0.5)
    finally:
        stop_demo_hub(proc, hub)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True
