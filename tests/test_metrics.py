"""Metrics and quotas against a real demo Hub: ``GET metrics`` parses and moves with a
real build and a real launch; only rees admins and Hub admins may read it; a user over
``rees.quotas.servers_per_user`` or ``rees.quotas.queued_builds_per_user`` gets a 429
that names the quota with the numbers."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import (GitRepo, build_through_service, remove_built_images, slow_repo,
                           start_demo_hub, stop_demo_hub, stop_server, wait_build,
                           wait_ready, wait_running)


def scrape(hub, token=None) -> dict:
    r = hub.request("GET", "/services/rees/metrics", token=token)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


BUILT = ("rees_builds_total", (("status", "built"),))
LAUNCHES = ("rees_launch_duration_seconds_count", (("pooled", "false"),))


def test_metrics_move_with_a_real_build_and_launch(hub, base_image, tmp_path, unique):
    before = scrape(hub)
    for name in ("rees_build_queue_length", "rees_images_disk_bytes",
                 "process_resident_memory_bytes", "rees_gc_removed_images_total"):
        assert (name, ()) in before, name
    name = unique("metrics-env")
    build_through_service(hub, GitRepo(str(tmp_path / "repo")), base_image,
                          {"marker.txt": f"metrics {uuid.uuid4().hex}\n"}, name)
    after = scrape(hub)
    assert after[BUILT] >= before.get(BUILT, 0) + 1
    assert after[("rees_build_duration_seconds_count", ())] >= 1
    assert after[("rees_images_disk_bytes", ())] > 0

    user = unique("metrics-user")
    token = hub.user_token(user)
    r = hub.rees("POST", "applications", token=token, json={"environment": name})
    assert r.status_code == 201, r.text
    try:
        wait_ready(hub, user, r.json()["id"], token=token)
        deadline = time.monotonic() + 20  # the service polls the Hub about once a second
        while scrape(hub).get(LAUNCHES, 0) < before.get(LAUNCHES, 0) + 1:
            assert time.monotonic() < deadline, "the launch was not observed"
            time.sleep(0.5)
        running = scrape(hub)  # at most the cache's 10 s old
        deadline = time.monotonic() + 20
        while running.get(("rees_running_servers", (("environment", name),)), 0) < 1:
            assert time.monotonic() < deadline, "the running server was not counted"
            time.sleep(1)
            running = scrape(hub)
    finally:
        stop_server(hub, user, r.json()["id"], token)


def test_only_metrics_readers_get_metrics(hub, unique):
    plain = hub.user_token(unique("metrics-plain"))
    r = hub.request("GET", "/services/rees/metrics", token=plain)
    assert r.status_code == 403
    assert "custom:rees:metrics" in r.json()["error"]
    scrape(hub, hub.user_token("reesadmin"))  # a rees admin who is no Hub admin
    r = hub.request("GET", "/services/rees/metrics", headers={"Authorization": ""})
    assert r.status_code == 403


@pytest.fixture(scope="module")
def quota_hub(base_image, tmp_path_factory):
    """A demo Hub with small quotas."""
    state_dir = str(tmp_path_factory.mktemp("quota-hub"))
    run = uuid.uuid4().hex[:6]
    proc, hub = start_demo_hub(state_dir, {
        "quotas": {"servers_per_user": 1, "queued_builds_per_user": 1},
        "storage": {"volume_name": f"rees-quota{run}-{{username}}"},
        "builders": ["builder"],
    })
    yield hub
    stop_demo_hub(proc, hub)
    remove_built_images(os.path.join(state_dir, "rees", "rees.sqlite"))
    import subprocess
    names = subprocess.run(["docker", "volume", "ls", "-q", "--filter",
                            f"name=rees-quota{run}-"], capture_output=True,
                           text=True).stdout.split()
    if names:
        subprocess.run(["docker", "volume", "rm", "-f", *names], capture_output=True)


def test_a_server_over_the_quota_is_refused(quota_hub, base_image, tmp_path):
    hub = quota_hub
    name = "quota-env"
    build_through_service(hub, GitRepo(str(tmp_path / "repo")), base_image,
                          {"marker.txt": "quota\n"}, name)
    token = hub.user_token("dana")
    r = hub.rees("POST", "applications", token=token, json={"environment": name})
    assert r.status_code == 201, r.text
    try:
        wait_ready(hub, "dana", name, token=token)
        r = hub.rees("POST", "applications", token=token,
                     json={"environment": name, "server_name": "second"})
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) >= 1
        error = r.json()["error"]
        assert "rees.quotas.servers_per_user" in error
        assert "you have 1 server(s)" in error and "at most 1" in error
        # the server it has is answered, not refused
        again = hub.rees("POST", "applications", token=token, json={"environment": name})
        assert again.status_code == 200, again.text
        # admins are exempt
        r = hub.rees("POST", "applications", json={"environment": name})
        assert r.status_code == 201, r.text
        r2 = hub.rees("POST", "applications",
                      json={"environment": name, "server_name": "second"})
        assert r2.status_code == 201, r2.text
    finally:
        stop_server(hub, "dana", name, token)
    admin = hub.request("GET", "/hub/api/user").json()["name"]
    for server in (name, "second"):
        stop_server(hub, admin, server)


def test_a_build_over_the_queue_quota_is_refused(quota_hub, base_image, tmp_path):
    hub = quota_hub
    token = hub.user_token("builder")
    ids = []
    try:
        for i in range(2):  # the first runs, the second waits
            repo = GitRepo(str(tmp_path / f"slow{i}"))
            slow_repo(repo, base_image, seconds=120, marker=f"quota{i}")
            r = hub.rees("POST", "builds", token=token,
                         json={"repo": repo.url, "name": f"quota-slow-{i}"})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
            if i == 0:
                wait_running(hub, ids[0])
        repo = GitRepo(str(tmp_path / "slow2"))
        slow_repo(repo, base_image, seconds=120, marker="quota2")
        r = hub.rees("POST", "builds", token=token,
                     json={"repo": repo.url, "name": "quota-slow-2"})
        assert r.status_code == 429, r.text
        assert int(r.headers["Retry-After"]) >= 1
        error = r.json()["error"]
        assert "rees.quotas.queued_builds_per_user" in error and "you have 1 build" in error
        assert scrape(hub)[("rees_build_queue_length", ())] == 1
    finally:
        for build_id in ids:
            hub.rees("DELETE", f"builds/{build_id}", token=token)
        for build_id in ids:
            wait_build(hub, build_id, token=token)
