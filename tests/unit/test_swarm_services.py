"""Add-on services in multi-node mode, their pure parts: names within Swarm's limit,
where each service may run, the task spec (password in the environment only, limits,
health check, volume, network alias), the server's secret mount, the
``rees.swarm.service_placement`` setting, and a start that fails stopping the others.
The real swarm is tested in tests/swarm/test_services.py."""

from __future__ import annotations

import asyncio

import pytest

from tljh_rees.services.kinds import PASSWORD_ENV, ServiceCatalog, kind_named
from tljh_rees.services.runner import (Running, ServiceFailed, ServiceLaunch, ServiceRunner,
                                       failure_message)
from tljh_rees.settings import SettingsError, parse_settings
from tljh_rees.swarm.services import (NAME_MAX, SwarmServiceRunner, secret_mount,
                                      service_constraints, swarm_name)

def launch(kind: str = "postgres", volume: str = "rees-home-ann-postgres") -> ServiceLaunch:
    k = kind_named(kind)
    params = k.check_params({})
    return ServiceLaunch("rees-swarm-ann--s1", "ann", "rees-swarm-ann--s1--services", k,
                         k.versions[0], params, "pw-SECRET-1", "reg:5000/rees/x@sha256:ab",
                         volume, 256 * 1024**2, 0.5)


def test_swarm_names_fit_and_stay_apart():
    assert swarm_name("rees-swarm-ann--s1", "--postgres") == "rees-swarm-ann--s1--postgres"
    long_a, long_b = "rees-swarm-" + "a" * 60 + "x", "rees-swarm-" + "a" * 60 + "y"
    a, b = swarm_name(long_a, "--postgres"), swarm_name(long_b, "--postgres")
    assert len(a) == len(b) == NAME_MAX and a != b and a.endswith("--postgres")


def test_a_persistent_service_is_pinned_to_the_home_node_the_others_follow_labels():
    extra = ["node.platform.os==linux"]
    assert service_constraints(launch(), "node1", extra, ["services=yes"]) == [
        "node.platform.os==linux", "node.id==node1"]
    assert service_constraints(launch("redis", ""), "node1", extra, ["services=yes"]) == [
        "node.platform.os==linux", "node.labels.services==yes"]
    assert service_constraints(launch("redis", ""), "", [], []) == []


def test_the_task_spec_keeps_the_password_in_the_environment_only():
    runner = SwarmServiceRunner(None, ServiceCatalog(), lambda n, v: "", health_timeout=45,
                                home_node=lambda: "node1")
    one = launch()
    spec = runner.spec(one)
    container = spec["ContainerSpec"]
    assert container["Env"] == [f"{PASSWORD_ENV}=pw-SECRET-1"]
    assert "pw-SECRET-1" not in repr({k: v for k, v in container.items() if k != "Env"})
    assert "pw-SECRET-1" not in repr(one.labels())
    assert container["Image"] == "reg:5000/rees/x@sha256:ab"
    assert container["Healthcheck"]["Test"] == ["CMD", *one.kind.health_command()]
    assert container["Healthcheck"]["StartPeriod"] == 45 * 10**9
    assert container["CapabilityDrop"] == ["NET_RAW"]
    assert [(m["Type"], m["Source"], m["Target"]) for m in container["Mounts"]] == [
        ("volume", "rees-home-ann-postgres", one.kind.data_dir)]
    assert spec["Resources"] == {"Limits": {"MemoryBytes": 256 * 1024**2,
                                            "NanoCPUs": 500_000_000},
                                 "Reservations": {"MemoryBytes": 256 * 1024**2}}
    assert spec["Placement"]["Constraints"] == ["node.id==node1"]
    assert spec["RestartPolicy"]["Condition"] == "none"
    (network,) = spec["Networks"]
    assert (network["Target"], network["Aliases"]) == ("rees-swarm-ann--s1--services",
                                                      ["postgres"])
    assert not runner.spec(launch("redis", ""))["ContainerSpec"].get("Mounts")


def test_the_server_mounts_its_launchs_secret_in_its_home():
    running = Running("net", {"PGPASSWORD": "x", "A": "1"},
                      secret={"ID": "sid", "Name": "rees-swarm-ann--s1--services-ab12cd34"})
    assert running.env_text() == "A=1\nPGPASSWORD=x\n"
    ref = secret_mount(running, "/home/jovyan/", 1000, 100)
    assert ref["SecretID"] == "sid" and ref["File"] == {
        "Name": "/home/jovyan/.rees/services.env", "UID": "1000", "GID": "100",
        "Mode": 0o400}


def test_a_failure_shows_the_last_lines_without_the_password():
    text = "\n".join(f"line {i}" for i in range(30)) + "\nFATAL: bad pw-SECRET-1\n"
    said = failure_message("postgres", text, "pw-SECRET-1", "task: non-zero exit (1)")
    assert said.startswith("The postgres service did not start (task: non-zero exit (1)).")
    assert "FATAL: bad [secret]" in said and "pw-SECRET-1" not in said
    assert "line 10\n" not in said and "line 11" in said  # the last 20 lines
    assert failure_message("redis", "", "pw", "why").endswith("(no output)")


def test_service_placement_setting():
    s = parse_settings({"swarm": {"enabled": True, "service_placement": ["services=yes"]}})
    assert s.swarm.service_placement == ("services=yes",)
    assert parse_settings({"swarm": {"service_placement": "db=1"}}).swarm.service_placement \
        == ("db=1",)
    with pytest.raises(SettingsError) as info:
        parse_settings({"swarm": {"service_placement": ["no label"]}})
    assert any(p.startswith("rees.swarm.service_placement: expected a list of node labels")
               for p in info.value.problems), info.value.problems


class Failing(ServiceRunner):
    """Redis fails at once; postgres would wait for ever."""

    def __init__(self):
        super().__init__(None, ServiceCatalog(), lambda n, v: "")
        self.waiting, self.abandoned = [], []

    async def _start_one(self, server, user, network, spec, volume_for, password):
        if spec["name"] == "redis":
            await asyncio.sleep(0.01)
            raise ServiceFailed("redis failed")
        self.waiting.append(asyncio.current_task())
        await asyncio.sleep(3600)

    async def _abandon(self, server):
        self.abandoned.append(server)


async def test_a_service_that_fails_stops_the_others_waiting_and_cleans_up():
    runner = Failing()
    running = Running("net", passwords={"postgres": "a", "redis": "b"})
    with pytest.raises(ServiceFailed, match="redis failed"):
        await runner.start("srv", "ann", [{"name": "postgres"}, {"name": "redis"}],
                           lambda n: "", running)
    assert runner.waiting and runner.waiting[0].cancelled()
    assert runner.abandoned == ["srv"]


async def test_a_service_image_is_made_locally_then_published():
    made, published = [], []

    async def publish(local: str) -> str:
        published.append(local)
        return f"reg:5000/rees/{local}@sha256:ab"

    runner = SwarmServiceRunner(None, ServiceCatalog(),
                                lambda name, version: made.append(name) or f"{name}:{version}",
                                publish=publish)
    assert await runner._image("postgres", "15") == "reg:5000/rees/postgres:15@sha256:ab"
    assert made == ["postgres"] and published == ["postgres:15"]
