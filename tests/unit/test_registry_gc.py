"""Multi-node mode's garbage collection, the pure parts: which registry manifests go, the
lock between pushes and blob collection, and a catalog that keeps an environment whose
image only the registry still holds launchable. The real registry, its HTTP API and
``docker-registry garbage-collect`` are in tests/swarm/test_gc_export.py."""

from __future__ import annotations

import os
import threading

import pytest
from sqlalchemy import select

from tljh_rees.operations.gc import GarbageCollector, Removal
from tljh_rees.store.models import Build, Environment
from tljh_rees.swarm.registry import registry_lock
from tljh_rees.swarm.registry_gc import Manifest, plan, split_ref

from .conftest import ADMIN, ALICE
from .test_gc import add

R = "10.0.0.1:5000"
D = {n: "sha256:" + n * 64 for n in "abcdef"}


def test_split_ref_names_repository_and_digest_of_this_registry_only():
    assert split_ref(f"{R}/rees/rees-env:0123456789ab@{D['a']}", R) == \
        ("rees/rees-env", D["a"])
    assert split_ref(f"{R}/rees/rees-env@{D['a']}", R) == ("rees/rees-env", D["a"])
    assert split_ref(f"other:5000/rees/rees-env:v@{D['a']}", R) is None
    assert split_ref(f"{R}/rees/rees-env:v", R) is None  # no digest: nothing to keep by


def test_plan_keeps_current_and_building_and_skips_other_repositories():
    manifests = [Manifest("rees/rees-env", D["a"], ("new",)),  # env's current
                 Manifest("rees/rees-env", D["b"], ("old", "older")),  # an old build
                 Manifest("rees/rees-gone", D["c"], ("v1",)),  # env deleted
                 Manifest("rees/rees-busy", D["d"], ("v2",)),  # being built: maybe its new
                 Manifest("rees/tljh-rees/rootfs", D["e"], ("bookworm",)),  # Hub's helper
                 Manifest("rees/rees-other", D["f"], ("x",)),  # not this GC's prefix
                 Manifest("rees/rees-plain", D["a"], ("1",), built_here=False)]  # an admin's
    doomed, kept = plan(manifests, {("rees/rees-env", D["a"])}, {"env", "busy"}, {"busy"},
                        image_prefix="rees-")
    assert [(d.manifest.repository, d.manifest.digest, d.reason) for d in doomed] == [
        ("rees/rees-env", D["b"], "an old build of env (no longer its image)"),
        ("rees/rees-gone", D["c"], "its environment was deleted"),
        ("rees/rees-other", D["f"], "its environment was deleted")]
    assert kept == [f"registry rees/rees-busy@{D['d'][:19]}: a build of busy is under way",
                    f"registry rees/rees-plain@{D['a'][:19]}: not built by this service "
                    "(no org.tljh-rees.build_id label)"]
    # a narrower prefix (the tests' own environments) leaves the others alone
    doomed, _ = plan(manifests, set(), {"env"}, set(), image_prefix="rees-gone")
    assert [d.manifest.repository for d in doomed] == ["rees/rees-gone"]
    # the same digest in another repository is kept only where it is current
    doomed, _ = plan([Manifest("rees/rees-copy", D["a"], ("v",))],
                     {("rees/rees-env", D["a"])}, {"copy"}, set())
    assert [d.manifest.repository for d in doomed] == ["rees/rees-copy"]


def test_a_push_holds_the_registry_against_blob_collection(tmp_path):
    folder = str(tmp_path)
    with registry_lock(R, exclusive=False, folder=folder) as pushing:
        assert pushing
        with registry_lock(R, exclusive=False, folder=folder) as another_push:
            assert another_push  # pushes do not wait for each other
        with registry_lock(R, exclusive=True, folder=folder) as collecting:
            assert not collecting  # a push is under way: the GC does not wait, nor run
        with registry_lock("other:5000", exclusive=True, folder=folder) as elsewhere:
            assert elsewhere  # one lock per registry
    with registry_lock(R, exclusive=True, folder=folder) as collecting:
        assert collecting
        started = threading.Event()
        pushed = threading.Event()

        def push():
            started.set()
            with registry_lock(R, exclusive=False, folder=folder):
                pushed.set()

        thread = threading.Thread(target=push)
        thread.start()
        started.wait(5)
        assert not pushed.wait(0.3)  # a push waits for the collection to end
    thread.join(5)
    assert pushed.is_set()


class RecordingCollector:
    """The GC's registry part, recording what the round hands it."""

    def __init__(self):
        self.calls = []

    def collect(self, report, catalog, image_prefix):
        self.calls.append(image_prefix)
        report.removals.append(Removal("registry-manifest", "r/rees/rees-x@sha256:1",
                                       "an old build of x", 0))


def test_multi_node_removes_local_images_the_registry_keeps_without_a_rebuild(catalog,
                                                                              images):
    add(catalog, images, "pushed", 100, built_day=1)
    add(catalog, images, "local", 100, built_day=2)  # e.g. built before multi-node mode
    with catalog.transaction() as db:
        env = db.scalars(select(Environment).where(Environment.name == "pushed")).one()
        env.registry_ref = f"{R}/rees/rees-pushed:v1@{D['a']}"
    registry = RecordingCollector()
    gc = GarbageCollector(catalog, images, None, registry=registry, build_cache_hours=0,
                          max_image_bytes=1)
    report = gc.run()
    assert [r.what for r in report.removals if r.kind == "image"] == \
        ["rees-pushed:v1", "rees-local:v1"]
    assert "the registry keeps it" in report.removals[0].reason
    assert "registry" not in report.removals[1].reason
    pushed = catalog.get(ADMIN, "pushed")
    assert pushed.launchable and not pushed.image_present  # servers pull it
    assert catalog.launch_plan(ALICE, "pushed").registry_ref.endswith(D["a"])
    assert not catalog.get(ADMIN, "local").launchable  # nothing to pull: a rebuild
    assert [e.name for e in catalog.visible(ADMIN, launchable_only=True)] == ["pushed"]
    assert registry.calls == ["rees-"]
    assert report.removals[-1].line(False) == \
        "removed registry-manifest r/rees/rees-x@sha256:1: an old build of x"
    # a Hub back in single-machine mode has no registry: references are forgotten
    assert catalog.sync({}, {}) == ["pushed"]
    assert not catalog.get(ADMIN, "pushed").launchable


def test_registry_images_are_the_current_pushed_ones(catalog, images):
    add(catalog, images, "pushed", 100, built_day=1)
    add(catalog, images, "local", 100, built_day=2)
    with catalog.transaction() as db:
        env = db.scalars(select(Environment).where(Environment.name == "pushed")).one()
        env.registry_ref = f"{R}/rees/rees-pushed:v1@{D['a']}"
        pushed_id = env.image_id
        assert db.scalars(select(Build)).all() == []
    assert catalog.registry_images() == {pushed_id}


def test_the_service_and_the_cli_find_the_registrys_files(tmp_path, monkeypatch):
    from traitlets.config import Config

    from tljh_rees.app import ReesService
    from tljh_rees.settings import parse_settings
    from tljh_rees.swarm import hub
    from tljh_rees.swarm.registry import Registry, prepare_own_registry
    from tljh_rees.swarm.registry_gc import collector_for

    state = str(tmp_path)
    own, config_file = prepare_own_registry(state, "10.0.0.1", 5000)
    # the service: hub.py's config (what the Hub hands it) and app.py's collaborator
    monkeypatch.setattr(hub, "registry_for", lambda settings, address: (own, config_file))
    monkeypatch.setattr(hub, "swarm_address", lambda settings: "10.0.0.1")
    c = Config()
    hub.service_swarm_config(c, parse_settings({"swarm": {"enabled": True}}))
    service = ReesService(config=c)
    assert service._registry_collector(None) is None  # one machine: no registry part
    collector = service._registry_collector(Registry(own.address, own.username,
                                                     own.password))
    assert (collector.ca_file, collector.config_file) == (own.ca_file, config_file)
    assert collector.storage() == os.path.join(state, "swarm", "registry", "data")
    # ``tljh-rees gc``: the same registry, read from the files (nothing made)
    swarm = parse_settings({"swarm": {"enabled": True}}).swarm
    read = collector_for(swarm, state)
    assert read.registry == own and read.config_file == config_file
    assert read.ca_file == own.ca_file
    assert own.password not in repr(read.registry)
    # an admin's registry: its credentials, no files, no blob collection
    theirs = collector_for(parse_settings({"swarm": {
        "enabled": True, "registry": "reg.example.org:443", "registry_username": "u",
        "registry_password": "p"}}).swarm, state)
    assert theirs.registry == Registry("reg.example.org:443", "u", "p")
    assert theirs.config_file == "" and theirs.storage() == ""
    with pytest.raises(OSError):  # the Hub never ran in multi-node mode here
        collector_for(swarm, str(tmp_path / "elsewhere"))
