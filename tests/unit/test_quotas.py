"""Quotas (rees.quotas.*): the checks with given counts, launches starting with a fake
clock, the build queue refusing over a quota, and the launcher refusing a server too
many — each a 429 naming its setting, the current use, and what to do."""

from __future__ import annotations

import asyncio

import pytest

from tljh_rees.catalog import Viewer
from tljh_rees.errors import NotFound
from tljh_rees.fakes import FakeSource
from tljh_rees.launcher import Launcher
from tljh_rees.ondemand.limits import TooMany
from tljh_rees.operations.quotas import Quotas, StartingLaunches
from tljh_rees.settings import SettingsError, parse_settings
from tljh_rees.hubconfig import configure_hub, service_config

from .conftest import ADMIN, ALICE, BOB

SHA1 = "1" * 40


def test_servers_per_user_names_the_quota_and_the_numbers():
    quotas = Quotas(servers_per_user=2, retry_after=40)
    quotas.check_servers(ALICE, 1)
    with pytest.raises(TooMany) as e:
        quotas.check_servers(ALICE, 2)
    assert e.value.status == 429 and e.value.retry_after == 40
    message = str(e.value)
    assert "rees.quotas.servers_per_user" in message
    assert "you have 2 server(s)" in message and "at most 2" in message and "stop one" in message
    quotas.check_servers(ADMIN, 10)  # admins are exempt
    Quotas(servers_per_user=0).check_servers(ALICE, 100)  # 0: no quota


def test_queued_builds_per_user_and_queue_length():
    quotas = Quotas(queued_builds_per_user=2, queue_length=5)
    quotas.check_builds(ALICE, 1, 4)
    with pytest.raises(TooMany, match=r"rees\.quotas\.queued_builds_per_user: you have 2 "):
        quotas.check_builds(ALICE, 2, 2)
    quotas.check_builds(Viewer("", builder=True), 9, 4)  # Binder links: the site's
    quotas.check_builds(ADMIN, 9, 4)  # admins: no per-user quota ...
    with pytest.raises(TooMany, match=r"rees\.quotas\.queue_length: 5 build\(s\)"):
        quotas.check_builds(ADMIN, 0, 5)  # ... but the queue's length holds for them too
    Quotas(queued_builds_per_user=0, queue_length=0).check_builds(ALICE, 99, 99)


def test_launches_per_environment_counts_starting_launches_with_a_clock():
    now = [1000.0]
    starting = StartingLaunches(forget_after=600, clock=lambda: now[0])
    quotas = Quotas(launches_per_environment=2)
    starting.begin("alice/a", "env")
    starting.begin("bob/a", "env")
    starting.begin("bob/b", "other")
    assert starting.count("env") == 2
    with pytest.raises(TooMany, match=r"rees\.quotas\.launches_per_environment: 2 launch"):
        quotas.check_launches("env", starting.count("env"))
    quotas.check_launches("other", starting.count("other"))
    starting.end("alice/a")
    quotas.check_launches("env", starting.count("env"))
    now[0] += 601  # a launch never seen to end is forgotten
    assert starting.count("env") == 0 and starting.count("other") == 0


def test_settings_defaults_validation_and_hub_config():
    defaults = parse_settings({}).quotas
    assert (defaults.servers_per_user, defaults.queued_builds_per_user,
            defaults.launches_per_environment, defaults.queue_length) == (0, 3, 0, 50)
    with pytest.raises(SettingsError) as e:
        parse_settings({"quotas": {"servers_per_user": -1, "queue_length": "many",
                                   "per_day": 3}})
    text = str(e.value)
    assert "rees.quotas.servers_per_user: expected a whole number" in text
    assert "rees.quotas.queue_length" in text and "rees.quotas.per_day: unknown" in text
    settings = parse_settings({"hub_ip": "192.0.2.1",
                               "quotas": {"servers_per_user": 2, "queue_length": 7}})
    config = service_config(settings)
    assert config.Quotas.servers_per_user == 2 and config.Quotas.queue_length == 7
    assert config.Quotas.queued_builds_per_user == 3
    from traitlets.config import Config
    c = Config()
    configure_hub(c, settings)
    limit = c.JupyterHub.named_server_limit_per_user

    class Handler:
        def __init__(self, current_user):
            self.current_user = current_user

    class Caller:
        def __init__(self, kind, admin=False):
            self.kind, self.admin = kind, admin

    assert limit(Handler(Caller("user"))) == 2  # the Hub's own spawn page
    assert limit(Handler(Caller("user", admin=True))) == 0  # admins are exempt
    assert limit(Handler(Caller("service"))) == 0  # the service applies the quota itself
    c = Config()
    configure_hub(c, parse_settings({"hub_ip": "192.0.2.1"}))
    assert "named_server_limit_per_user" not in c.JupyterHub  # the Hub's own default


async def test_the_build_queue_refuses_over_the_quotas(manager, builder):
    manager.quotas = Quotas(queued_builds_per_user=1, queue_length=2)
    builder.gate = asyncio.Event()

    def req(name, viewer=ALICE):
        from tljh_rees.builds.request import BuildRequest
        return BuildRequest(source=FakeSource(f"https://e.org/{name}", {"main": SHA1}),
                            ref="main", name=name, requester=viewer)

    await manager.submit(req("a"))  # runs (not queued)
    await asyncio.sleep(0.05)
    await manager.submit(req("b"))  # queued: alice has 1 waiting
    with pytest.raises(TooMany, match="queued_builds_per_user: you have 1 build"):
        await manager.submit(req("c"))
    with pytest.raises(NotFound):  # refused before anything was recorded
        manager.catalog.get(ALICE, "c")
    await manager.submit(req("d", BOB))  # bob's own quota; the queue now holds 2
    with pytest.raises(TooMany, match="queue_length: 2 build"):
        await manager.submit(req("e", ADMIN))
    builder.gate.set()


class FakeHub:
    def __init__(self, servers):
        self.servers = servers
        self.started = []

    async def user(self, name):
        return {"name": name, "servers": self.servers}

    async def start_server(self, user, server, options):
        self.started.append(server)
        self.servers[server] = {"ready": True, "user_options": options}


async def test_the_launcher_refuses_a_server_too_many_and_reports_ready():
    hub = FakeHub({"one": {"ready": True, "user_options": {"environment": "x"}}})
    launcher = Launcher(catalog=None, hub=hub, quotas=Quotas(servers_per_user=1))
    ready = []
    launcher.on_ready.append(lambda seconds, pooled: ready.append(pooled))
    user = Viewer("alice", servers=True)
    with pytest.raises(TooMany, match="servers_per_user: you have 1 server"):
        await launcher.start(user, "two", {"environment": "y"}, "environment")
    assert hub.started == []
    # the server it has already: answered, not refused
    app, started = await launcher.start(user, "one", {"environment": "x"}, "environment")
    assert not started
    launcher.quotas.servers_per_user = 2
    app, started = await launcher.start(user, "two", {"environment": "y"}, "environment")
    assert started and hub.started == ["two"] and ready == [False]
    assert launcher.starting.count("y") == 0  # ready: no longer starting


class PendingHub(FakeHub):
    """A start the Hub shows pending first; ``finish`` makes it ready or gone."""

    async def start_server(self, user, server, options):
        self.started.append(server)
        self.servers[server] = {"ready": False, "pending": "spawn", "user_options": options}

    def finish(self, server, ready: bool):
        if ready:
            self.servers[server] = {"ready": True, "user_options": {}}
        else:
            del self.servers[server]


async def test_a_launch_is_starting_until_seen_ready_or_gone():
    hub = PendingHub({})
    launcher = Launcher(catalog=None, hub=hub, quotas=Quotas(launches_per_environment=1))
    launcher.ready_poll = 0.01
    ready = []
    launcher.on_ready.append(lambda seconds, pooled: ready.append(seconds))
    alice, bob = Viewer("alice", servers=True), Viewer("bob", servers=True)
    app, started = await launcher.start(alice, "a", {"environment": "env"}, "environment")
    assert started and not app["ready"] and launcher.starting.count("env") == 1
    with pytest.raises(TooMany, match="launches_per_environment: 1 launch"):
        await launcher.start(bob, "c", {"environment": "env"}, "environment")
    hub.finish("a", ready=True)
    for _ in range(100):
        if ready:
            break
        await asyncio.sleep(0.01)
    assert len(ready) == 1 and launcher.starting.count("env") == 0
    hub.servers.clear()
    await launcher.start(bob, "b", {"environment": "env"}, "environment")
    hub.finish("b", ready=False)  # the start failed: no longer starting, not observed
    for _ in range(100):
        if not launcher.starting.count("env"):
            break
        await asyncio.sleep(0.01)
    assert launcher.starting.count("env") == 0 and len(ready) == 1
