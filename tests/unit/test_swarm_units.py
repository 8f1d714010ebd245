"""Multi-node mode's pure parts: the ``rees.swarm`` settings, the local CA and the
registry's files, the queue with a publishing builder (the catalog keeps the registry
reference; a push that fails fails the build), reading nodes, what they hold together,
the JupyterLab extension's version key. The real swarm, registry
and spawner are tested in tests/swarm/."""

from __future__ import annotations

import os

import bcrypt
import pytest
import yaml
from cryptography import x509

from tljh_rees.builds.builder import BuildFailed
from tljh_rees.builds.manager import BuildManager
from tljh_rees.builds.orphans import ProcessNotes
from tljh_rees.fakes import FakeBuilder, FakeSource
from tljh_rees.settings import SettingsError, parse_settings
from tljh_rees.store.logs import LogStore
from tljh_rees.swarm.ca import ensure_server_certificate
from tljh_rees.swarm.capacity import SwarmMachine
from tljh_rees.swarm.lab import content_key, volume_name
from tljh_rees.swarm.nodes import node_from
from tljh_rees.swarm.registry import Registry, prepare_own_registry, trust

from .conftest import ALICE, BOB
from .test_build_queue import SHA1, SHA2, finished, request

PROFILES = {"small": {"cpu": 1, "memory": "1G"}, "gpu": {"cpu": 2, "memory": "4G"}}


def problems(raw) -> list[str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(raw)
    return info.value.problems


def test_swarm_settings_default_off_and_parse():
    assert not parse_settings({}).swarm.enabled
    s = parse_settings({"profiles": PROFILES, "swarm": {
        "enabled": True, "registry_port": 5443, "advertise_address": "10.0.0.5",
        "placement": {"gpu": ["gpu=true", "zone=a"]}}}).swarm
    assert (s.enabled, s.registry_port, s.advertise_address) == (True, 5443, "10.0.0.5")
    assert s.placement == {"gpu": ("gpu=true", "zone=a")}
    admin = parse_settings({"swarm": {"registry": "registry.example.org:5000",
                                      "registry_username": "u",
                                      "registry_password": "s3cr3t-pw"}})
    assert "s3cr3t" not in repr(Registry(admin.swarm.registry, "u",
                                         admin.swarm.registry_password))
    assert "s3cr3t" not in repr(admin)  # settings print no secret


def test_swarm_settings_errors_name_the_key():
    found = problems({"profiles": PROFILES, "swarm": {
        "enabled": "maybe", "registry_port": 70000, "advertise_address": "here",
        "placement": {"huge": ["big=true"], "gpu": ["not a label"]}, "colour": 1}})
    assert "rees.swarm.colour: unknown setting" in found[0]
    expected = ["rees.swarm.placement.huge: no profile of that name (profiles: gpu, small)",
                "rees.swarm.placement.gpu: expected a list of node labels like gpu=true",
                "rees.swarm.enabled: expected true or false",
                "rees.swarm.advertise_address: expected the manager's IP address",
                "rees.swarm.registry_port: expected a port number from 1 to 65535"]
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)
    half = problems({"swarm": {"registry": "r.example.org", "registry_username": "u"}})
    assert half == ["rees.swarm.registry_password: expected both registry_username and "
                    "registry_password, or neither"]
    assert problems({"swarm": {"registry": "https://r.example.org/x"}})[0].startswith(
        "rees.swarm.registry: expected a registry host[:port]")


def test_the_ca_signs_a_certificate_for_the_managers_address(tmp_path):
    cert_path, key_path = ensure_server_certificate(str(tmp_path), "10.1.2.3")
    with open(tmp_path / "ca.crt", "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    cert.verify_directly_issued_by(ca)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(a) for a in alt.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    assert os.stat(key_path).st_mode & 0o077 == 0 and os.stat(tmp_path / "ca.key").st_mode \
        & 0o077 == 0
    # the same address keeps the certificate; another one gets a new one, same CA
    assert ensure_server_certificate(str(tmp_path), "10.1.2.3") == (cert_path, key_path)
    ensure_server_certificate(str(tmp_path), "10.9.9.9")
    with open(cert_path, "rb") as f:
        moved = x509.load_pem_x509_certificate(f.read())
    moved.verify_directly_issued_by(ca)
    assert moved.serial_number != cert.serial_number


def test_own_registry_files_keep_their_password_private(tmp_path):
    registry, config_path = prepare_own_registry(str(tmp_path), "10.1.2.3", 5005)
    assert registry.address == "10.1.2.3:5005" and registry.username == "tljh-rees"
    with open(config_path) as f:
        config = yaml.safe_load(f)
    assert config["http"]["addr"] == "10.1.2.3:5005" and config["http"]["tls"]["key"]
    with open(config["auth"]["htpasswd"]["path"]) as f:
        user, hashed = f.read().strip().split(":", 1)
    assert user == "tljh-rees" and bcrypt.checkpw(registry.password.encode(), hashed.encode())
    with open(config_path) as f:
        assert registry.password not in f.read()
    again, _ = prepare_own_registry(str(tmp_path), "10.1.2.3", 5005)
    assert again.password == registry.password  # engines keep working after a restart
    for name in ("password", "htpasswd", "config.yml"):
        path = tmp_path / "swarm" / "registry" / name
        assert os.stat(path).st_mode & 0o077 == 0, name
    written = trust(registry, certs_d=str(tmp_path / "certs.d"))
    assert written == str(tmp_path / "certs.d" / "10.1.2.3:5005" / "ca.crt")
    with open(written) as mine, open(registry.ca_file) as theirs:
        assert mine.read() == theirs.read()
    assert registry.reference("rees-env:abc") == "10.1.2.3:5005/rees/rees-env:abc"


class PublishingBuilder(FakeBuilder):
    publishes = True
    down = ""

    async def publish(self, image, on_line):
        if self.down:
            raise BuildFailed(f"the registry r:5000 did not take the image: {self.down}")
        return f"r:5000/rees/{image}@sha256:{'0' * 64}"


@pytest.fixture
async def publishing(catalog, images, tmp_path):
    builder = PublishingBuilder(images)
    manager = BuildManager(catalog, LogStore(directory=str(tmp_path / "logs")), builder,
                           images, ProcessNotes(str(tmp_path / "run")))
    await manager.start()
    yield manager, builder
    await manager.shutdown()


async def test_the_catalog_keeps_where_the_registry_has_the_image(publishing, catalog):
    manager, builder = publishing
    source = FakeSource("https://example.org/r", {"main": SHA1, "next": SHA2})
    done = await finished(manager, (await manager.submit(request("env", source))).id)
    assert done.status == "built"
    plan = catalog.launch_plan(BOB, "env")
    assert plan.registry_ref == f"r:5000/rees/{done.image}@sha256:{'0' * 64}"
    # another name for the same commit is pushed under its own name
    other = await manager.submit(request("copy", source, viewer=BOB))
    assert other.status == "built" and other.cache_hit
    assert catalog.launch_plan(ALICE, "copy").registry_ref.startswith("r:5000/rees/rees-copy:")
    # a registry that is down fails the build with that reason; the old image stays
    builder.down = "connection refused"
    failed = await finished(manager, (await manager.submit(request("env", source,
                                                                   ref="next"))).id)
    assert failed.status == "failed"
    assert failed.error == "the registry r:5000 did not take the image: connection refused"
    assert catalog.launch_plan(BOB, "env").registry_ref == plan.registry_ref


async def test_an_environment_built_before_multi_node_mode_is_pushed_on_a_rebuild(
        manager, publishing, catalog):
    source = FakeSource("https://example.org/r", {"main": SHA1})
    done = await finished(manager, (await manager.submit(request("env", source))).id)
    assert catalog.launch_plan(BOB, "env").registry_ref == ""  # single-machine builder
    swarm_manager, _ = publishing  # the same catalog, now with a registry
    again = await finished(swarm_manager,
                           (await swarm_manager.submit(request("env", source))).id)
    assert again.status == "built" and again.image_id == done.image_id
    assert catalog.launch_plan(BOB, "env").registry_ref.startswith("r:5000/rees/rees-env:")


def test_a_managers_own_address_comes_from_its_manager_status():
    attrs = {"ID": "abc", "Description": {"Hostname": "hub"}, "Spec": {"Availability": "active"},
             "Status": {"State": "ready", "Addr": "0.0.0.0"},
             "ManagerStatus": {"Addr": "10.0.0.1:2377"}}
    node = node_from(attrs)
    assert (node.address, node.usable) == ("10.0.0.1", True)
    attrs["Status"] = {"State": "down", "Addr": "10.0.0.7"}
    down = node_from(attrs)
    assert down.address == "10.0.0.7" and not down.usable
    assert down.describe() == "hub (10.0.0.7, node abc)"


def _node(node_id: str, state: str, cpus: float, memory: int, availability="active"):
    return {"ID": node_id, "Status": {"State": state, "Addr": "10.0.0.1"},
            "Spec": {"Availability": availability},
            "Description": {"Hostname": node_id,
                            "Resources": {"NanoCPUs": int(cpus * 1e9),
                                          "MemoryBytes": memory}}}


class NodesOnly:
    """The one call SwarmMachine makes of the engine's API."""

    def __init__(self, nodes):
        self.listed = nodes
        self.calls = 0

    def nodes(self):
        self.calls += 1
        return self.listed


def test_swarm_machine_fits_one_server_in_the_largest_node_and_pools_in_all():
    api = NodesOnly([_node("a", "ready", 2, 8 * 2**30), _node("b", "ready", 4, 4 * 2**30),
                     _node("c", "down", 64, 2**40),  # gone: counts for nothing
                     _node("d", "ready", 8, 2**40, availability="drain")])
    machine = SwarmMachine(api, max_age=3600)
    assert (machine.cpus, machine.memory) == (4, 8 * 2**30)
    assert (machine.total_cpus, machine.total_memory) == (6, 12 * 2**30)
    assert api.calls == 1  # read once per max_age
    api.listed = [_node("a", "ready", 2, 2**30)]
    assert SwarmMachine(api).total_cpus == 2


def test_the_lab_extensions_key_follows_its_files(tmp_path):
    folder = tmp_path / "tljh_rees_lab"
    (folder / "share").mkdir(parents=True)
    (folder / "share" / "x.js").write_text("one")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "a.pyc").write_bytes(b"changes every run")
    first = content_key(str(folder))
    assert content_key(str(folder)) == first and len(first) == 12
    (folder / "__pycache__" / "a.pyc").write_bytes(b"other")
    assert content_key(str(folder)) == first  # caches are not part of it
    (folder / "share" / "x.js").write_text("two")
    assert content_key(str(folder)) != first
    assert volume_name(str(folder)) == f"rees-lab-{content_key(str(folder))}"
