"""Templates' rules against a real SQLite catalog, the caps' arithmetic, the culler's
decision and pools' sizing against the machine — no Hub, no Docker (the flows
themselves are tested against both in tests/test_ondemand.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tljh_rees.catalog import Viewer
from tljh_rees.catalog.templates import Machine, TemplateCatalog
from tljh_rees.errors import Conflict, Forbidden, InputError, NotFound
from tljh_rees.ondemand.culler import overdue
from tljh_rees.ondemand.limits import RateLimit, TooMany, check_cap, client_address
from tljh_rees.ondemand.pools import PoolManager
from tljh_rees.ondemand.temporary import TemporaryUsers
from tljh_rees.store.models import Template

from .conftest import ADMIN, ALICE, BOB, READER
from .test_catalog import add

MACHINE = Machine(cpus=2, memory=8 * 1024**3)


@pytest.fixture
def templates(catalog):
    add(catalog, ALICE, "course")
    add(catalog, ALICE, "secret", public=False)
    add(catalog, ALICE, "unbuilt", built=False)
    return TemplateCatalog(catalog, MACHINE, allowed_images=["busybox:stable"])


def test_a_template_takes_the_sites_default_limits_and_checks_its_own(templates):
    t = templates.register(ALICE, {"name": "t1", "image-name": "course"})
    assert (t.cpu, t.memory, t.cull_timeout, t.owner) == (1.0, 2 * 1024**3, 3600, "alice")
    t = templates.register(ALICE, {"name": "t2", "image-name": "course",
                                   "limits": {"memory": "512M", "cpu": 0.5}})
    assert (t.cpu, t.memory) == (0.5, 512 * 1024**2)
    for limits, field in (({"cpu": 3}, "limits.cpu"), ({"cpu": True}, "limits.cpu"),
                          ({"memory": "9G"}, "limits.memory"),
                          ({"memory": "lots"}, "limits.memory"),
                          ({"gpu": 1}, "limits")):
        with pytest.raises(InputError) as e:
            templates.register(ALICE, {"name": "bad", "image-name": "course",
                                       "limits": limits})
        assert e.value.field == field
        assert "expected" in e.value.message


def test_fields_are_checked_and_named(templates):
    for data, field in (({"image-name": "course", "cull-timeout": "1h"}, "cull-timeout"),
                        ({"image-name": "course", "max-age": 10**9}, "max-age"),
                        ({"image-name": "course", "anonymous": "yes"}, "anonymous"),
                        ({"image-name": "course", "allowed-users": "bob"}, "allowed-users"),
                        ({"image-name": "course", "services": [{"name": "spark"}]},
                         "services[0].name"),
                        ({"image-name": "course", "services": ["postgres"]}, "services[0]"),
                        ({"image-name": "course", "command": "bash"}, "command"),
                        ({"image-name": "course", "name": "Not A Name"}, "name"),
                        ({"image-name": "secret-of-someone"}, "image-name"),
                        ({}, "image-name"), ({"image-name": "course", "x": 1}, "x")):
        with pytest.raises(InputError) as e:
            templates.register(ALICE, data)
        assert e.value.field == field, data


def test_who_may_register_see_launch_and_change(templates):
    with pytest.raises(Forbidden):
        templates.register(READER, {"image-name": "course"})
    with pytest.raises(InputError):  # Bob may not see Alice's private environment
        templates.register(BOB, {"name": "x", "image-name": "secret"})
    templates.register(ALICE, {"name": "only-bob", "image-name": "course",
                               "allowed-users": ["bob"]})
    assert [t.name for t in templates.all(BOB)] == ["only-bob"]
    assert templates.all(READER) == []
    with pytest.raises(NotFound):
        templates.get(READER, "only-bob")
    assert templates.plan(BOB, "only-bob").image == "sha256:course"
    with pytest.raises(NotFound):
        templates.plan(READER, "only-bob")
    with pytest.raises(Forbidden):  # Bob may launch it, not change it
        templates.update(BOB, "only-bob", {"max-age": 60})
    assert templates.update(ADMIN, "only-bob", {"max-age": 60}).max_age == 60
    with pytest.raises(InputError):
        templates.update(ALICE, "only-bob", {"name": "renamed"})
    templates.remove(ALICE, "only-bob")
    assert templates.find("only-bob") is None


def test_plans_follow_the_environment_and_the_admins_images(templates, catalog):
    templates.register(ALICE, {"name": "later", "image-name": "unbuilt"})
    assert templates.status(templates.find("later")) == "failed"
    with pytest.raises(Conflict):
        templates.plan(ALICE, "later")
    templates.register(ADMIN, {"name": "plain", "image-name": "busybox:stable"})
    plain = templates.find("plain")
    assert (plain.image_kind, templates.status(plain)) == ("image", "completed")
    assert templates.plan(ALICE, "plain").image == "busybox:stable"
    templates.allowed_images = []  # the admin takes it back
    with pytest.raises(Conflict):
        templates.plan(ALICE, "plain")
    templates.register(ALICE, {"name": "gone", "image-name": "course"})
    catalog.remove(ALICE, "course")
    with pytest.raises(Conflict) as e:
        templates.plan(ALICE, "gone")
    assert "deleted" in e.value.message


def test_a_temporary_user_runs_only_its_own_anonymous_template(templates):
    open_one = templates.register(ALICE, {"name": "open", "image-name": "course",
                                          "anonymous": True})
    templates.register(ALICE, {"name": "closed", "image-name": "course"})
    rows = TemporaryUsers(templates, hub=None)
    row = rows.add(open_one, pooled=False)
    assert templates.temporary_user(row.name).state == "claimed"
    plan = templates.plan(Viewer(row.name), "open", templates.temporary_user(row.name))
    assert plan.temporary and plan.anonymous
    with pytest.raises(Forbidden):
        templates.plan(Viewer(row.name), "closed", templates.temporary_user(row.name))
    with pytest.raises(Forbidden):  # no environments of their own either: no template
        templates.plan(Viewer(row.name), "", templates.temporary_user(row.name))
    rows.set_state(row.name, "gone")
    assert templates.temporary_user(row.name) is None


def test_pools_are_sized_against_the_machine(templates):
    templates.register(ALICE, {"name": "half", "image-name": "course", "anonymous": True,
                               "limits": {"cpu": 0.5, "memory": "1G"}})
    templates.register(ALICE, {"name": "fat", "image-name": "course", "anonymous": True,
                               "limits": {"cpu": 0.25, "memory": "4G"}})
    templates.register(ALICE, {"name": "closed", "image-name": "course"})
    pools = PoolManager(templates, TemporaryUsers(templates, hub=None), hub=None,
                        machine=MACHINE)
    pools.wake = lambda: None  # no loop runs here
    assert pools.resize(ADMIN, "half", 4)["size"] == 4  # 2 CPUs, 4G: the whole machine
    with pytest.raises(Conflict) as e:
        pools.resize(ADMIN, "fat", 1)  # 0.25 more CPU
    assert "2.25 CPUs" in e.value.message and "(2 CPUs, 8G)" in e.value.message
    assert pools.resize(ADMIN, "half", 2)["size"] == 2
    assert pools.resize(ADMIN, "fat", 1)["size"] == 1  # 1.25 CPUs, 6G
    with pytest.raises(Conflict) as e:
        pools.resize(ADMIN, "fat", 2)  # 10G
    assert "10G" in e.value.message
    with pytest.raises(Conflict):
        pools.resize(ADMIN, "closed", 1)  # not anonymous
    with pytest.raises(Forbidden):
        pools.resize(ALICE, "half", 1)
    with pytest.raises(InputError):
        pools.resize(ADMIN, "half", 1.5)


def test_the_client_address_is_the_nearest_hop_outside_our_proxies():
    assert client_address("127.0.0.1", "") == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.7") == "198.51.100.7"
    # what a client writes itself is further left: never believed
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 127.0.0.1") == "198.51.100.7"
    assert client_address("203.0.113.5", "6.6.6.6") == "203.0.113.5"  # not via a proxy
    assert client_address("10.0.0.2", "198.51.100.7", trusted=("10.0.0.0/8",)) == \
        "198.51.100.7"


def test_the_hourly_rate_slides_and_counts_only_launches_that_went_ahead():
    now = [1000.0]
    rate = RateLimit(2, clock=lambda: now[0])
    for _ in range(2):
        rate.check("a")
        rate.record("a")
    rate.check("b")  # another address is not limited
    with pytest.raises(TooMany) as e:
        rate.check("a")
    assert e.value.status == 429 and e.value.retry_after == 3600
    now[0] += 1800
    with pytest.raises(TooMany) as e:
        rate.check("a")
    assert e.value.retry_after == 1800
    now[0] += 1801
    rate.check("a")
    RateLimit(0).check("a")  # 0: no cap


def test_caps_name_the_setting():
    check_cap(2, 3, "anonymous servers", "rees.anonymous.max_servers")
    check_cap(99, 0, "anonymous servers", "rees.anonymous.max_servers")  # 0: no cap
    with pytest.raises(TooMany) as e:
        check_cap(3, 3, "anonymous servers", "rees.anonymous.max_servers")
    assert "rees.anonymous.max_servers" in str(e.value) and e.value.retry_after == 60


def test_a_server_is_overdue_by_idleness_or_age():
    now = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)
    template = Template(cull_timeout=600, max_age=3600)
    ago = lambda s: now - timedelta(seconds=s)  # noqa: E731
    assert overdue(template, ago(599), ago(599), now) is None
    assert "idle" in overdue(template, ago(601), ago(601), now)
    assert "older" in overdue(template, ago(10), ago(3601), now)
    assert overdue(Template(cull_timeout=0, max_age=0), ago(10**6), ago(10**6), now) is None


def test_a_templates_services_are_checked_by_the_sites_offer(catalog):
    from tljh_rees.services import ServiceCatalog
    from tljh_rees.settings import parse_settings

    add(catalog, ALICE, "course")
    s = parse_settings({"services": {"postgres": {"enabled": True}}})
    templates = TemplateCatalog(catalog, MACHINE,
                                services=ServiceCatalog({x.name: x for x in s.services}))
    t = templates.register(ALICE, {"name": "db", "image-name": "course",
                                   "services": [{"name": "postgres",
                                                 "params": {"database": "lab"}}]})
    from tljh_rees.catalog.templates import template_json
    assert template_json(t)["services"] == [
        {"name": "postgres", "version": "15",
         "params": {"database": "lab", "max_connections": 20, "shared_buffers": "32M"}}]
    for services, field in (([{"name": "redis"}], "services[0].name"),
                            ([{"name": "postgres", "params": {"max_connections": 1}}],
                             "services[0].params.max_connections")):
        with pytest.raises(InputError) as e:
            templates.register(ALICE, {"name": "bad", "image-name": "course",
                                       "services": services})
        assert e.value.field == field
