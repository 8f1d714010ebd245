"""The ``rees`` settings: every key with good and bad values, and the messages.

Values are given in the forms ``tljh-config set`` writes: digits become ints,
``true``/``false`` bools, anything else a string; lists come from ``add-item``.
"""

import copy

import pytest

from tljh_rees.settings import (
    DEFAULTS, SettingsError, format_size, merge_defaults, parse_settings, parse_size,
)


def problems(raw, **kwargs) -> list[str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(raw, **kwargs)
    assert str(info.value).startswith("invalid tljh-rees configuration:")
    return info.value.problems


def only_problem(raw, **kwargs) -> str:
    found = problems(raw, **kwargs)
    assert len(found) == 1, found
    return found[0]


# -- the section as a whole -----------------------------------------------------------------

def test_missing_section_gives_defaults():
    s = parse_settings(None)
    assert s.state_dir == "/opt/tljh/state/rees"
    assert (s.service_ip, s.service_port) == ("127.0.0.1", 6789)
    assert s.hub_ip == "" and s.default_image == "" and s.profiles == ()
    assert s.builds.concurrency == 1 and s.builds.timeout == 3600
    assert s.builds.log_max_bytes == 4 * 1024**2 and not s.builds.allow_local_repos
    assert s.storage.volume_name == "rees-home-{username}" and s.storage.path == "work"
    assert s.gallery_show == "all" and s.builders == () and s.admins == ()
    assert parse_settings({}) == s


def test_section_must_be_a_mapping():
    assert only_problem("banana") == "rees: expected a mapping of settings, got 'banana'"


def test_the_defaults_written_at_install_are_valid():
    s = parse_settings(copy.deepcopy(DEFAULTS))
    assert [p.name for p in s.profiles] == ["small"] and s.default_profile == "small"


def test_unknown_keys_are_named_with_the_known_ones():
    found = problems({"stat_dir": "/x", "builds": {"concurency": 2},
                      "profiles": {"small": {"memroy": "2G"}}})
    assert found[0].startswith("rees.stat_dir: unknown setting (known here: admins, anonymous, "
                               "base_image_mirror, binder, builders, builds,")
    assert found[1] == ("rees.builds.concurency: unknown setting (known here: "
                        "allow_local_repos, base_image, build_args, ca_bundle, concurrency, "
                        "log_max_bytes, timeout)")
    assert found[2] == ("rees.profiles.small.memroy: unknown setting (known here: cpu, "
                        "description, memory)")


def test_every_problem_is_reported_at_once():
    found = problems({"state_dir": "relative", "service": {"port": 0},
                      "profiles": {"small": {"memory": "banana", "cpu": "lots"}},
                      "gallery": {"show": "some"}})
    assert [f.split(":")[0] for f in found] == [
        "rees.profiles.small.cpu", "rees.profiles.small.memory",
        "rees.state_dir", "rees.service.port", "rees.gallery.show"]


@pytest.mark.parametrize("group", ["service", "builds", "storage", "gallery", "profiles",
                                   "data_mounts"])
def test_groups_must_be_groups(group):
    assert only_problem({group: "x"}) == f"rees.{group}: expected a group of settings, got 'x'"


# -- top-level keys ---------------------------------------------------------------------------

def test_state_dir():
    assert parse_settings({"state_dir": "/srv/rees"}).state_dir == "/srv/rees"
    assert only_problem({"state_dir": "srv/rees"}) == (
        "rees.state_dir: expected an absolute directory path, got 'srv/rees'")


@pytest.mark.parametrize("key,path", [("ip", ("service", "ip")), ("hub_ip", ("hub_ip",))])
def test_ip_addresses(key, path):
    def raw(value):
        return {"service": {"ip": value}} if path[0] == "service" else {"hub_ip": value}

    s = parse_settings(raw("172.17.0.1"))
    assert (s.service_ip if key == "ip" else s.hub_ip) == "172.17.0.1"
    assert parse_settings(raw("::1")) is not None
    name = ".".join(path)
    assert only_problem(raw("banana")) == f"rees.{name}: expected an IP address, got 'banana'"
    assert only_problem(raw("10.0.0")) == f"rees.{name}: expected an IP address, got '10.0.0'"


def test_service_port():
    assert parse_settings({"service": {"port": 8123}}).service_port == 8123
    for bad in (0, 70000, "http", True, 80.5):
        assert only_problem({"service": {"port": bad}}) == (
            f"rees.service.port: expected a port number from 1 to 65535, got {bad!r}")


def test_default_image():
    assert parse_settings({"default_image": "rees-base:abc"}).default_image == "rees-base:abc"
    assert only_problem({"default_image": ["a"]}) == (
        "rees.default_image: expected an image name, got ['a']")


def test_base_image_mirror():
    url = "https://mirror.example.org/debian"
    assert parse_settings({"base_image_mirror": url}).base_image_mirror == url
    assert only_problem({"base_image_mirror": "mirror.example.org"}) == (
        "rees.base_image_mirror: expected a Debian mirror URL (http:// or https://), "
        "got 'mirror.example.org'")


@pytest.mark.parametrize("key", ["builders", "admins"])
def test_user_lists(key):
    assert getattr(parse_settings({key: ["ada", "bob"]}), key) == ("ada", "bob")
    assert getattr(parse_settings({key: "ada"}), key) == ("ada",)
    for bad in ([1], [""], {"ada": 1}):
        assert only_problem({key: bad}) == f"rees.{key}: expected a list of user names, got {bad!r}"


# -- builds -----------------------------------------------------------------------------------

def test_builds_concurrency_and_timeout():
    s = parse_settings({"builds": {"concurrency": 2, "timeout": 600}})
    assert (s.builds.concurrency, s.builds.timeout) == (2, 600)
    for bad in (0, -1, 1.5, "two", True):
        assert only_problem({"builds": {"concurrency": bad}}) == (
            f"rees.builds.concurrency: expected a whole number ≥ 1, got {bad!r}")
    assert only_problem({"builds": {"timeout": "1h"}}) == (
        "rees.builds.timeout: expected seconds, a whole number ≥ 1, got '1h'")


def test_builds_allow_local_repos():
    for value, expected in ((True, True), ("yes", True), (False, False), ("no", False)):
        assert parse_settings({"builds": {"allow_local_repos": value}}).builds.allow_local_repos \
            is expected
    assert only_problem({"builds": {"allow_local_repos": "maybe"}}) == (
        "rees.builds.allow_local_repos: expected true or false, got 'maybe'")


def test_builds_base_image_and_log_size():
    s = parse_settings({"builds": {"base_image": "debian:12", "log_max_bytes": "1M"}})
    assert s.builds.base_image == "debian:12" and s.builds.log_max_bytes == 1024**2
    assert only_problem({"builds": {"log_max_bytes": "lots"}}) == (
        "rees.builds.log_max_bytes: expected a size like 4M, got 'lots'")


def test_builds_build_args():
    s = parse_settings({"builds": {"build_args": {"PIP_INDEX_URL": "https://pypi.internal",
                                                  "RETRIES": 3}}})
    assert s.builds.build_args == {"PIP_INDEX_URL": "https://pypi.internal", "RETRIES": "3"}
    assert only_problem({"builds": {"build_args": {"BAD-NAME": "x"}}}) == (
        "rees.builds.build_args.BAD-NAME: expected a build argument name "
        "(letters, digits and _), got 'BAD-NAME'")
    assert only_problem({"builds": {"build_args": {"A": {"b": 1}}}}) == (
        "rees.builds.build_args.A: expected a text value, got {'b': 1}")


def test_builds_ca_bundle(tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert parse_settings({"builds": {"ca_bundle": str(bundle)}}).builds.ca_bundle == str(bundle)
    assert only_problem({"builds": {"ca_bundle": "ca.pem"}}) == (
        "rees.builds.ca_bundle: expected an absolute file path, got 'ca.pem'")
    missing = str(tmp_path / "missing.pem")
    assert only_problem({"builds": {"ca_bundle": missing}}) == (
        f"rees.builds.ca_bundle: expected an existing file, got {missing!r}")


# -- profiles ---------------------------------------------------------------------------------

def test_profiles():
    s = parse_settings({"profiles": {
        "small": {"cpu": 0.5, "memory": "512M", "description": "Small"},
        "large": {"cpu": 2, "memory": 4 * 1024**3},
        "free": {},
    }, "default_profile": "large"}, cpu_count=2)
    small, large, free = s.profiles
    assert (small.cpu, small.memory, small.description) == (0.5, 512 * 1024**2, "Small")
    assert small.label == "Small (0.5 CPU, 512M RAM)"
    assert large.label == "large (2 CPU, 4G RAM)" and free.label == "free (no limits)"
    assert s.profile("large") is large and s.profile("huge") is None
    assert s.default_profile == "large"
    assert large.to_dict() == {"name": "large", "cpu": 2.0, "memory": 4 * 1024**3,
                               "memory_text": "4G", "description": "",
                               "label": "large (2 CPU, 4G RAM)"}


def test_profile_memory_message_names_the_key():
    assert only_problem({"profiles": {"small": {"memory": "banana"}}}) == (
        "rees.profiles.small.memory: expected a size like 2G (at least 6M), got 'banana'")
    assert only_problem({"profiles": {"small": {"memory": 512}}}) == (
        "rees.profiles.small.memory: expected a size like 2G (at least 6M), got 512")


def test_profile_cpu():
    for bad in (0, -1, "lots", True):
        assert only_problem({"profiles": {"p": {"cpu": bad}}}) == (
            f"rees.profiles.p.cpu: expected a number of CPUs like 1 or 0.5, got {bad!r}")
    assert only_problem({"profiles": {"p": {"cpu": 4}}}, cpu_count=2) == (
        "rees.profiles.p.cpu: expected at most 2 (the CPUs of this machine), got 4")


def test_profile_names_and_shapes():
    assert only_problem({"profiles": {"Big Box": {}}}) == (
        "rees.profiles.Big Box: expected a profile name of lowercase letters, digits, "
        "'-', '_' or '.'")
    assert only_problem({"profiles": {"small": "2G"}}) == (
        "rees.profiles.small: expected cpu, memory and description, got '2G'")


def test_default_profile_must_exist():
    assert only_problem({"profiles": {"small": {}}, "default_profile": "large"}) == (
        "rees.default_profile: expected one of the profiles (small), got 'large'")
    assert only_problem({"default_profile": "small"}) == (
        "rees.default_profile: expected one of the profiles (none defined), got 'small'")


# -- storage and data mounts -------------------------------------------------------------------

def test_storage():
    s = parse_settings({"storage": {"volume_name": "home-{username}", "path": "work/data/"}})
    assert (s.storage.volume_name, s.storage.path) == ("home-{username}", "work/data")
    expected = "a Docker volume name containing {username}, like rees-home-{username}"
    for bad in ("home", "home {username}", "{user}-{username}"):
        assert only_problem({"storage": {"volume_name": bad}}) == (
            f"rees.storage.volume_name: expected {expected}, got {bad!r}")
    for bad in ("../elsewhere", "/data", ""):
        assert only_problem({"storage": {"path": bad}}) == (
            "rees.storage.path: expected a folder relative to the home directory, like work, "
            f"got {bad!r}")


def test_data_mounts():
    s = parse_settings({"data_mounts": {
        "datasets": {"source": "/srv/data", "target": "/data"},
        "scratch": {"source": "/srv/scratch", "target": "/scratch", "readonly": False},
    }})
    assert [(m.name, m.source, m.target, m.readonly) for m in s.data_mounts] == [
        ("datasets", "/srv/data", "/data", True), ("scratch", "/srv/scratch", "/scratch", False)]
    assert only_problem({"data_mounts": {"d": {"target": "/data"}}}) == (
        "rees.data_mounts.d.source: required, expected an absolute path")
    assert only_problem({"data_mounts": {"d": {"source": "/srv", "target": "data"}}}) == (
        "rees.data_mounts.d.target: expected an absolute path in the server, got 'data'")
    assert only_problem({"data_mounts": {"d": {"source": "/srv", "target": "/d",
                                               "readonly": "sometimes"}}}) == (
        "rees.data_mounts.d.readonly: expected true or false, got 'sometimes'")
    assert only_problem({"data_mounts": {"d": "/srv"}}) == (
        "rees.data_mounts.d: expected source, target and readonly, got '/srv'")


def test_gallery_show():
    assert parse_settings({"gallery": {"show": "public"}}).gallery_show == "public"
    assert only_problem({"gallery": {"show": "some"}}) == (
        "rees.gallery.show: expected all or public, got 'some'")


# -- sizes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,size", [
    ("2G", 2 * 1024**3), ("2g", 2 * 1024**3), ("512M", 512 * 1024**2), ("1.5GiB", 1536 * 1024**2),
    ("64 KB", 64 * 1024), ("1T", 1024**4), ("1000", 1000), (2048, 2048),
])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["banana", "2X", "-1G", "0", 0, -5, True, "", "G"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_format_size():
    assert [format_size(n) for n in (2 * 1024**3, 1536 * 1024**2, 1024**4, 1000)] == [
        "2G", "1536M", "1T", "1000"]


# -- defaults written by tljh_config_post_install ----------------------------------------------

def test_merge_defaults_fills_an_empty_section_without_sharing_defaults():
    section = {}
    assert merge_defaults(section) is True
    assert section == DEFAULTS
    section["profiles"]["small"]["memory"] = "8G"
    assert DEFAULTS["profiles"]["small"]["memory"] == "2G"
    assert merge_defaults(section) is False


def test_merge_defaults_never_overwrites_the_admins_keys():
    section = {"state_dir": "/srv/rees", "builds": {"concurrency": 3},
               "storage": {"path": "files"}, "gallery": "public"}
    merge_defaults(section)
    assert section["state_dir"] == "/srv/rees"
    assert section["builds"] == {"concurrency": 3, "allow_local_repos": False}
    assert section["storage"] == {"path": "files", "volume_name": "rees-home-{username}"}
    assert section["gallery"] == "public"  # not a group: left for validation to report


def test_merge_defaults_leaves_the_admins_profiles_and_choice_alone():
    section = {"profiles": {"gpu": {"cpu": 2, "memory": "8G"}}}
    merge_defaults(section)
    assert section["profiles"] == {"gpu": {"cpu": 2, "memory": "8G"}}
    assert "default_profile" not in section
    assert parse_settings(section).profiles[0].name == "gpu"


def test_profile_memory_beyond_the_machine_is_refused():
    from tljh_rees.settings import machine_memory

    total = machine_memory()
    assert total and total > 0
    with pytest.raises(SettingsError) as err:
        parse_settings({"profiles": {"big": {"memory": "100T"}}}, memory_total=total)
    assert "rees.profiles.big.memory: expected at most" in str(err.value)
    assert parse_settings({"profiles": {"ok": {"memory": "1G"}}},
                          memory_total=total).profile("ok").memory == 1024**3


def test_export_registry_is_an_oras_prefix():
    assert parse_settings({"export": {"registry": "oras://127.0.0.1:5000/team"}}
                          ).export_registry == "oras://127.0.0.1:5000/team"
    with pytest.raises(SettingsError) as err:
        parse_settings({"export": {"registry": "https://example.org"}})
    assert "rees.export.registry: expected an ORAS registry prefix" in str(err.value)


# -- add-on services (more in test_services.py) ----------------------------------------------

def test_services_default_to_none_enabled_at_the_newest_version():
    s = parse_settings({})
    assert [(x.name, x.enabled, x.version) for x in s.services] == [
        ("postgres", False, "15"), ("redis", False, "7")]


def test_services_as_tljh_config_writes_them():
    s = parse_settings({"services": {"postgres": {
        "enabled": "true", "version": 15, "memory": "1G", "cpu": 1, "persistent": "false",
        "params": {"max_connections": 100, "shared_buffers": "256M", "database": "course"}}}})
    pg = s.service("postgres")
    assert (pg.enabled, pg.version, pg.memory, pg.cpu, pg.persistent) == \
        (True, "15", 1024**3, 1.0, False)
    assert pg.params == {"database": "course", "max_connections": 100,
                         "shared_buffers": "256M"}


def test_unknown_services_and_keys_are_named_with_the_known_ones():
    assert only_problem({"services": {"mongo": {"enabled": True}}}) == \
        "rees.services.mongo: unknown setting (known here: postgres, redis)"
    assert only_problem({"services": {"redis": {"enable": True}}}) == (
        "rees.services.redis.enable: unknown setting (known here: cpu, enabled, memory, "
        "params, persistent, version)")
    assert only_problem({"services": {"redis": {"params": {"maxmemory": "4G"}}}}) == (
        "rees.services.redis.params.maxmemory: expected a size like 64M from 16M to 2G, "
        "got '4G'")
    assert only_problem({"services": {"postgres": {"memory": "64M"}}}) == (
        "rees.services.postgres.memory: expected at least 128M for these params, got 64M")
    assert only_problem({"services": {"postgres": {"cpu": 3}}}, cpu_count=2) == (
        "rees.services.postgres.cpu: expected at most 2 (the CPUs of this machine), got 3")


def test_services_reach_the_service_and_the_spawner_as_plain_dicts():
    from traitlets.config import Config

    from tljh_rees.hubconfig import configure_hub, service_config
    from tljh_rees.services import ServiceCatalog

    s = parse_settings({"services": {"redis": {"enabled": True}}})
    offer = service_config(s).ReesService.services
    assert offer["redis"] == {"enabled": True, "version": "7", "memory": 128 * 1024**2,
                              "cpu": 0.5, "persistent": True,
                              "params": {"maxmemory": "64M", "maxmemory_policy": "noeviction",
                                         "appendonly": False}}
    assert offer["postgres"]["enabled"] is False
    c = Config()
    configure_hub(c, s, python="python3")
    assert c.ReesSpawner.services == offer
    assert ServiceCatalog.from_config(offer).offered() == {"redis": ("7",)}


def test_lab_extension_is_on_unless_turned_off():
    assert parse_settings({}).lab_extension is True
    assert parse_settings({"lab_extension": {"enabled": False}}).lab_extension is False
    found = problems({"lab_extension": {"enabled": "maybe", "colour": 1}})
    assert found[0].startswith("rees.lab_extension.colour: unknown setting (known here: "
                               "enabled)")
    assert found[1] == "rees.lab_extension.enabled: expected true or false, got 'maybe'"
