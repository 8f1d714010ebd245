"""Add-on service kinds and a site's offer of them: parameters, templates' lists, the
environment a server gets, that no command carries the password, image tags, settings.
No Docker (tests/test_service_images.py builds and runs the images)."""

from __future__ import annotations

import pytest

from tljh_rees.errors import InputError
from tljh_rees.services import KINDS, ServiceCatalog, kind_named
from tljh_rees.services.images import ServiceImageRecipe
from tljh_rees.services.kinds import Postgres
from tljh_rees.settings import SettingsError, parse_settings

PASSWORD = "s3cr'et \"pw\" with\\odd@chars"


def site(**enabled) -> ServiceCatalog:
    """A catalog from settings: ``postgres={...}`` enables postgres with those settings."""
    raw = {name: {"enabled": True, **values} for name, values in enabled.items()}
    return ServiceCatalog.from_config(
        {s.name: s.to_dict() for s in parse_settings({"services": raw}).services})


def field_of(call) -> InputError:
    with pytest.raises(InputError) as e:
        call()
    return e.value


# -- parameters -----------------------------------------------------------------------------

def test_params_get_their_defaults():
    assert kind_named("postgres").check_params({}) == {
        "database": "notebook", "max_connections": 20, "shared_buffers": "32M"}
    assert kind_named("redis").check_params(None) == {
        "maxmemory": "64M", "maxmemory_policy": "noeviction", "appendonly": False}


def test_params_are_normalized():
    checked = kind_named("postgres").check_params(
        {"database": "lab_1", "max_connections": 500, "shared_buffers": "1024M"})
    assert checked == {"database": "lab_1", "max_connections": 500, "shared_buffers": "1G"}
    assert kind_named("redis").check_params({"appendonly": "true"})["appendonly"] is True


@pytest.mark.parametrize("name,params,field,expected", [
    ("postgres", {"max_connections": 4}, "max_connections", "from 5 to 500"),
    ("postgres", {"max_connections": "20"}, "max_connections", "whole number"),
    ("postgres", {"max_connections": True}, "max_connections", "whole number"),
    ("postgres", {"shared_buffers": "8M"}, "shared_buffers", "from 16M to 1G"),
    ("postgres", {"shared_buffers": "lots"}, "shared_buffers", "a size like 32M"),
    ("postgres", {"database": "Bad-Name"}, "database", "lowercase letters"),
    ("postgres", {"database": "1db"}, "database", "not starting with a digit"),
    ("postgres", {"database": "x" * 64}, "database", "at most 63"),
    ("redis", {"maxmemory": "3G"}, "maxmemory", "from 16M to 2G"),
    ("redis", {"maxmemory_policy": "lru"}, "maxmemory_policy",
     "one of allkeys-lru, noeviction, volatile-lru"),
    ("redis", {"appendonly": "maybe"}, "appendonly", "true or false"),
])
def test_bad_params_are_named_with_their_path(name, params, field, expected):
    e = field_of(lambda: kind_named(name).check_params(params, where="services[2].params"))
    assert e.field == f"services[2].params.{field}"
    assert expected in e.message and "got" in e.message


def test_unknown_params_are_named_with_the_known_ones():
    e = field_of(lambda: kind_named("redis").check_params({"save": "60 1"}, "p"))
    assert e.field == "p.save"
    assert "unknown parameter 'save'" in e.message
    assert "appendonly, maxmemory, maxmemory_policy" in e.message
    e = field_of(lambda: kind_named("redis").check_params(["maxmemory"], "p"))
    assert e.field == "p"


# -- a site's offer and templates' lists -----------------------------------------------------

def test_a_site_offers_only_the_enabled_kinds():
    assert ServiceCatalog().offered() == {}
    assert site(postgres={}).offered() == {"postgres": ("15",)}
    assert site(postgres={}, redis={}).offered() == {"postgres": ("15",), "redis": ("7",)}


def test_a_list_is_normalized_with_the_sites_defaults():
    catalog = site(postgres={"params": {"max_connections": 40}}, redis={})
    assert catalog.check([{"name": "postgres"},
                          {"name": "redis", "version": 7, "params": {"appendonly": True}}]) == [
        {"name": "postgres", "version": "15",
         "params": {"database": "notebook", "max_connections": 40, "shared_buffers": "32M"}},
        {"name": "redis", "version": "7",
         "params": {"maxmemory": "64M", "maxmemory_policy": "noeviction",
                    "appendonly": True}},
    ]
    assert catalog.check([]) == []


@pytest.mark.parametrize("services,field,words", [
    ([{"name": "mysql"}], "services[0].name", ["'mysql' is an unknown service",
                                               "offers: postgres"]),
    ([{"name": "redis"}], "services[0].name", ["'redis' is not enabled", "offers: postgres"]),
    ([{"name": "postgres", "version": "16"}], "services[0].version",
     ["postgres 16 is not offered", "expected 15"]),
    ([{"name": "postgres"}, {"name": "postgres"}], "services[1].name", ["listed twice"]),
    ([{"name": "postgres", "params": {"max_connection": 3}}],
     "services[0].params.max_connection", ["unknown parameter"]),
    ([{"name": "postgres", "params": {"shared_buffers": "1G"}}], "services[0].params",
     ["need at least", "gives postgres 256M"]),
    (["postgres"], "services[0]", ["expected"]),
    ([{"name": "postgres", "port": 1}], "services[0]", ["expected"]),
    ({"name": "postgres"}, "services", ["expected a list"]),
    ([{"name": "postgres"}] * 21, "services", ["at most 20"]),
])
def test_bad_lists_are_refused_naming_the_field(services, field, words):
    e = field_of(lambda: site(postgres={}).check(services))
    assert e.field == field
    for word in words:
        assert word in e.message, e.message


def test_no_service_enabled_says_none_is_offered():
    e = field_of(lambda: ServiceCatalog().check([{"name": "postgres"}]))
    assert e.message == "'postgres' is not enabled on this site; this site offers: none"


# -- what runs, and what a server gets -------------------------------------------------------

def test_connection_env():
    pg = kind_named("postgres")
    env = pg.connection_env("db-host", "p@ss/word", pg.check_params({"database": "lab"}))
    assert env == {"DATABASE_URL": "postgresql://notebook:p%40ss%2Fword@db-host:5432/lab",
                   "PGHOST": "db-host", "PGPORT": "5432", "PGUSER": "notebook",
                   "PGPASSWORD": "p@ss/word", "PGDATABASE": "lab"}
    redis = kind_named("redis")
    env = redis.connection_env("cache", "pw:1", redis.check_params({}))
    assert env["REDIS_URL"] == "redis://default:pw%3A1@cache:6379/0"
    assert env["REDIS_PASSWORD"] == "pw:1" and env["REDIS_HOST"] == "cache"


def test_no_command_carries_the_password():
    for kind_class in KINDS.values():
        kind = kind_class()
        for version in kind.versions:
            params = kind.check_params({})
            for argv in (kind.command(version, params), kind.health_command()):
                assert all(PASSWORD not in a and "requirepass" not in a for a in argv), argv
            script = kind.start_script(version)
            assert "REES_SERVICE_PASSWORD" in script and PASSWORD not in script
            assert script.rstrip().splitlines()[-1] != ""  # ends in the server's exec


def test_commands_carry_the_parameters():
    pg = kind_named("postgres")
    argv = pg.command("15", pg.check_params({"database": "lab", "shared_buffers": "64M"}))
    assert argv[1] == "lab" and "shared_buffers=65536kB" in argv
    redis = kind_named("redis")
    argv = redis.command("7", redis.check_params({"maxmemory": "16M", "appendonly": True}))
    assert argv[1:] == ["--maxmemory", str(16 * 1024**2), "--maxmemory-policy",
                        "noeviction", "--appendonly", "yes"]
    assert "REDISCLI_AUTH" in " ".join(redis.health_command())


# -- images ---------------------------------------------------------------------------------

def test_the_tag_follows_what_goes_in(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"one")
    recipe = ServiceImageRecipe(kind_named("postgres"), "15", ca_bundle=str(ca))
    tag = recipe.tag()
    assert tag.startswith("tljh-rees/service-postgres:15-") and len(tag.split("-")[-1]) == 12
    assert ServiceImageRecipe(kind_named("postgres"), "15", ca_bundle=str(ca)).tag() == tag
    ca.write_bytes(b"two")
    assert recipe.tag() != tag

    class MorePackages(Postgres):
        def packages(self, version):
            return [*super().packages(version), "postgresql-contrib"]

    ca.write_bytes(b"one")
    assert ServiceImageRecipe(MorePackages(), "15", ca_bundle=str(ca)).tag() != tag
    assert ServiceImageRecipe(kind_named("postgres"), "15").tag() != tag  # no CA bundle
    assert ServiceImageRecipe(kind_named("postgres"), "15", ca_bundle=str(ca),
                              mirror="http://mirror.example/debian").tag() != tag


def test_the_dockerfile():
    recipe = ServiceImageRecipe(kind_named("redis"), "7", ca_bundle="/etc/hosts")
    text = recipe.dockerfile()
    assert text.startswith(f"FROM {recipe.base().rootfs_tag()}\n")
    assert "COPY ca-certificates.crt" in text and "SSL_CERT_FILE=" in text
    assert "--no-install-recommends redis-server" in text
    assert "USER redis" in text and "LABEL org.tljh-rees.service=redis" in text
    assert "COPY rees-service-start /usr/local/bin/rees-service-start" in text
    assert "COPY ca-certificates.crt" not in ServiceImageRecipe(kind_named("redis"),
                                                                "7").dockerfile()


# -- settings -------------------------------------------------------------------------------

def test_settings_default_to_no_service():
    s = parse_settings({})
    assert [x.name for x in s.services] == ["postgres", "redis"]
    assert not any(x.enabled for x in s.services)
    pg = s.service("postgres")
    assert (pg.version, pg.memory, pg.cpu, pg.persistent) == ("15", 256 * 1024**2, 0.5, True)
    assert pg.params["max_connections"] == 20


def test_settings_of_a_service():
    s = parse_settings({"services": {"redis": {
        "enabled": True, "version": 7, "memory": "512M", "cpu": 1, "persistent": False,
        "params": {"maxmemory": "256M", "maxmemory_policy": "allkeys-lru"}}}})
    redis = s.service("redis")
    assert (redis.enabled, redis.version, redis.memory, redis.cpu, redis.persistent) == \
        (True, "7", 512 * 1024**2, 1.0, False)
    assert redis.params == {"maxmemory": "256M", "maxmemory_policy": "allkeys-lru",
                            "appendonly": False}
    assert ServiceCatalog.from_config({"redis": redis.to_dict()}).settings("redis") == redis


def test_bad_service_settings_are_named():
    with pytest.raises(SettingsError) as e:
        parse_settings({"services": {
            "mysql": {"enabled": True},
            "postgres": {"enabled": "sometimes", "version": "16", "memory": "1K", "cpu": 0,
                         "persist": True, "params": {"max_connections": 1000}},
            "redis": {"memory": "64M", "params": {"maxmemory": "128M", "eviction": "x"}},
        }}, cpu_count=2)
    problems = e.value.problems
    assert problems[0] == "rees.services.mysql: unknown setting (known here: postgres, redis)"
    assert ("rees.services.postgres.persist: unknown setting (known here: cpu, enabled, "
            "memory, params, persistent, version)") in problems
    assert "rees.services.postgres.enabled: expected true or false, got 'sometimes'" in problems
    assert "rees.services.postgres.version: expected one of 15, got '16'" in problems
    assert any(p.startswith("rees.services.postgres.memory: expected a size") for p in problems)
    assert "rees.services.postgres.cpu: expected a number of CPUs like 1 or 0.5, got 0" in problems
    assert ("rees.services.postgres.params.max_connections: expected a whole number from 5 "
            "to 500, got 1000") in problems
    assert any(p.startswith("rees.services.redis.params.eviction: unknown parameter")
               for p in problems)


def test_services_count_against_the_servers_limits():
    from tljh_rees.errors import InputError
    from tljh_rees.services.kinds import ServiceCatalog

    catalog = ServiceCatalog.from_config({"postgres": {"enabled": True},
                                          "redis": {"enabled": True, "memory": 64 * 1024**2,
                                                    "cpu": 0.25}})
    specs = [{"name": "postgres"}, {"name": "redis"}]
    assert catalog.share([], 1024**3, 1.0) == (1024**3, 1.0)
    memory, cpu = catalog.share(specs, 1024**3, 1.5)
    assert memory == 1024**3 - 256 * 1024**2 - 64 * 1024**2 and cpu == 0.75
    assert catalog.share(specs, None, None) == (None, None)  # no limits: nothing to share
    with pytest.raises(InputError) as e:
        catalog.share(specs, 512 * 1024**2, 2.0)
    assert e.value.field == "limits.memory" and "give at least 576M" in e.value.message
    with pytest.raises(InputError) as e:
        catalog.share(specs, 2 * 1024**3, 0.75)
    assert e.value.field == "limits.cpu" and "give at least 1" in e.value.message
