"""Multi-node mode's garbage collection, the pure parts: which registry manifests go, the
lock between pushes and blob collection, and a catalog that keeps an environment whose
image only the registry still holds launchable. The real registry, its HTTP API and
``docker-registry garbage-collect`` are in tests/swarm/test_gc_export.py."""

from __future__ import annotations

import threading

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
                 Manifest("rees/rees-other", D["f"], ("x",))]  # not this GC's prefix
    doomed, kept = plan(manifests, {("rees/rees-env", D["a"])}, {"env", "busy"}, {"busy"},
                        image_prefix="rees-")
    assert [(d.manifest.repository, d.manifest.digest, d.reason) for d in doomed] == [
        ("rees/rees-env", D["b"], "an old build of env (no longer its image)"),
        ("rees/rees-gone", D["c"], "its environment was deleted"),
        ("rees/rees-other", D["f"], "its environment was deleted")]
    assert kept == [f"registry rees/rees-busy@{D['d'][:19]}: a build of busy is under way"]
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
