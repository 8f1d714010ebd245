"""The build queue with the fake builder and engine: joins, cache, order, cancelling,
races on names, deletes during builds, and restarts. The real builder and engine are
tested in tests/test_builds_api.py."""

from __future__ import annotations

import asyncio

import pytest

from tljh_rees.builds.manager import BuildManager
from tljh_rees.builds.orphans import ProcessNotes
from tljh_rees.builds.request import BuildRequest
from tljh_rees.builds.sources import GitSource
from tljh_rees.errors import Conflict, Forbidden
from tljh_rees.fakes import FakeSource
from tljh_rees.store.logs import LogStore

from .conftest import ADMIN, ALICE, BOB


SHA1, SHA2 = "1" * 40, "2" * 40


def request(name, source, viewer=ALICE, ref="main", **fields):
    return BuildRequest(source=source, ref=ref, name=name, requester=viewer, **fields)


async def finished(manager, build_id, timeout=10):
    for _ in range(int(timeout / 0.01)):
        build = manager.record(build_id)
        if build.done:
            return build
        await asyncio.sleep(0.01)
    raise AssertionError(f"build {build_id} did not finish: {manager.record(build_id).status}")


async def test_build_then_cache_hit_then_reuse_under_another_name(manager, catalog, builder):
    source = FakeSource("https://example.org/r", {"main": SHA1})
    build = await manager.submit(request("env", source))
    assert build.status == "queued"
    done = await finished(manager, build.id)
    assert done.status == "built" and done.commit == SHA1 and done.image_id
    plan = catalog.launch_plan(BOB, "env")
    assert plan.image == done.image_id

    again = await manager.submit(request("env", source))
    assert again.status == "built" and again.cache_hit and len(builder.runs) == 1

    other = await manager.submit(request("copy", source, viewer=BOB))
    assert other.status == "built" and other.cache_hit and len(builder.runs) == 1
    assert catalog.launch_plan(ALICE, "copy").image == done.image_id
    assert catalog.get(ALICE, "copy").owner == "bob"


async def test_identical_requests_join_one_build(manager, builder):
    source = FakeSource("https://example.org/r", {"main": SHA1})
    builder.gate = asyncio.Event()
    builds = await asyncio.gather(*(manager.submit(request("env", source)) for _ in range(8)))
    assert len({b.id for b in builds}) == 1
    builder.gate.set()
    assert (await finished(manager, builds[0].id)).status == "built"
    assert len(builder.runs) == 1


async def test_queue_is_first_in_first_out_and_cancellable(manager, builder):
    builder.gate = asyncio.Event()
    first = await manager.submit(request("a", FakeSource("https://e.org/a", {"main": SHA1})))
    second = await manager.submit(request("b", FakeSource("https://e.org/b", {"main": SHA1})))
    third = await manager.submit(request("c", FakeSource("https://e.org/c", {"main": SHA1})))
    await asyncio.sleep(0.05)
    assert manager.queue_position(second.id) == 1 and manager.queue_position(third.id) == 2
    with pytest.raises(Forbidden):
        await manager.cancel(BOB, second.id)
    assert (await manager.cancel(ALICE, second.id)).status == "cancelled"
    assert manager.queue_position(third.id) == 1
    assert (await manager.cancel(ADMIN, first.id)).status == "cancelled"  # while running
    builder.gate.set()
    assert (await finished(manager, third.id)).status == "built"
    assert builder.runs == ["rees-a:111111111111", "rees-c:111111111111"]
    with pytest.raises(Conflict):
        await manager.cancel(ALICE, first.id)


async def test_a_slow_request_cannot_take_a_name_claimed_meanwhile(manager, catalog):
    """Bob's repository answers slowly; Alice claims the name in between. Bob's request
    must be refused when it comes back, not land in Alice's environment."""
    slow = FakeSource("https://e.org/bobs", {"main": SHA2})
    slow.resolving = asyncio.Event()
    bobs = asyncio.create_task(manager.submit(request("contested", slow, viewer=BOB)))
    await asyncio.sleep(0.05)  # Bob passed the early check: the name was free
    alices = await manager.submit(request("contested", FakeSource("https://e.org/bobs",
                                                                   {"main": SHA1})))
    await finished(manager, alices.id)
    slow.resolving.set()
    with pytest.raises(Forbidden):
        await bobs
    env = catalog.get(ALICE, "contested")
    assert env.owner == "alice" and env.commit == SHA1


async def test_a_rebuild_keeps_visibility_and_profile(manager, catalog):
    source = FakeSource("https://e.org/r", {"main": SHA1, "next": SHA2})
    await finished(manager, (await manager.submit(
        request("env", source, public=False, profile="large"))).id)
    rebuilt = await manager.submit(request("env", source, ref="next"))
    await finished(manager, rebuilt.id)
    env = catalog.get(ALICE, "env")
    assert env.public is False and env.profile == "large" and env.commit == SHA2
    await finished(manager, (await manager.submit(request("env", source, public=True))).id)
    assert catalog.get(BOB, "env").public is True


async def test_a_build_of_a_deleted_environment_lands_nowhere(manager, catalog, builder,
                                                                images):
    builder.gate = asyncio.Event()
    source = FakeSource("https://e.org/r", {"main": SHA1})
    old = await manager.submit(request("env", source, public=False))
    await asyncio.sleep(0.05)
    # Alice deletes it while it builds; Bob claims the name for his own repository
    await manager.remove_environment(ALICE, "env", force=False)
    assert manager.record(old.id) is None
    assert not manager.logs.read(old.id)
    bobs = await manager.submit(request("env", FakeSource("https://e.org/bob", {"main": SHA2}),
                                        viewer=BOB))
    builder.gate.set()
    await finished(manager, bobs.id)
    env = catalog.get(BOB, "env")
    assert env.owner == "bob" and env.repo == "https://e.org/bob" and env.public is True
    assert [b.id for b in catalog.builds(BOB, "env")] == [bobs.id]


async def test_delete_is_refused_while_servers_run_unless_forced(manager, images):
    source = FakeSource("https://e.org/r", {"main": SHA1})
    await finished(manager, (await manager.submit(request("env", source))).id)
    images.running["env"] = ["rees-alice--env"]
    with pytest.raises(Conflict, match="force=true"):
        await manager.remove_environment(ALICE, "env", force=False)
    with pytest.raises(Forbidden):
        await manager.remove_environment(BOB, "env", force=True)
    await manager.remove_environment(ALICE, "env", force=True)
    assert not [t for t in images.ids if t.startswith("rees-env:")]


async def test_a_failed_build_keeps_the_earlier_image(manager, catalog, builder):
    source = FakeSource("https://e.org/r", {"main": SHA1, "next": SHA2})
    first = await finished(manager, (await manager.submit(request("env", source))).id)
    builder.fail = "step 3 failed"
    failed = await finished(manager, (await manager.submit(request("env", source,
                                                                   ref="next"))).id)
    assert failed.status == "failed" and failed.error == "step 3 failed"
    assert catalog.launch_plan(ALICE, "env").image == first.image_id


async def test_restart_requeues_public_builds_and_fails_private_ones(catalog, images,
                                                                     builder, tmp_path):
    from tests.helpers import GitRepo

    repo = GitRepo(str(tmp_path / "repo"))
    sha = repo.commit({"Dockerfile": "FROM scratch\n"})
    logs = LogStore(directory=str(tmp_path / "logs"))
    notes = ProcessNotes(str(tmp_path / "run"))
    first = BuildManager(catalog, logs, builder, images, notes)
    await first.start()
    builder.gate = asyncio.Event()
    public = await first.submit(request("pub", GitSource(repo.url, allow_local=True)))
    private = await first.submit(request("priv", FakeSource("https://e.org/p", {"main": SHA1},
                                                            private=True)))
    await asyncio.sleep(0.1)
    await first.shutdown()  # the service stops mid-build
    assert first.record(public.id).status == "running"

    builder.gate = None
    # local repositories are allowed on this "site" (as in the demo), so it may resume
    second = BuildManager(catalog, logs, builder, images, notes, allow_local_repos=True)
    await second.start()
    try:
        done = await finished(second, public.id)
        assert done.status == "built" and done.commit == sha
        failed = second.record(private.id)
        assert failed.status == "failed" and "credentials are never stored" in failed.error
        phases = [e["phase"] for e in logs.read(public.id) if e["type"] == "phase"]
        assert "re-queued after a restart" in str(logs.read(public.id)) and phases[-1] == "built"
    finally:
        await second.shutdown()


async def test_a_version_resolved_by_the_caller_is_not_asked_again(manager):
    """A Binder link's provider resolved the ref already: the repository is not asked
    a second time (here it would never answer)."""
    source = FakeSource("https://e.org/r", {"main": SHA1})
    source.resolving = asyncio.Event()  # never set
    build = await asyncio.wait_for(manager.submit(request("env", source, ref=SHA1),
                                                  commit=SHA1), 5)
    assert build.commit == SHA1
    assert (await finished(manager, build.id)).status == "built"


async def test_only_a_removed_image_of_a_public_git_build_is_built_again(manager, catalog):
    """What a launch asks for when an environment's image is gone (the real rebuild, a
    fetch from git, is tested against a Hub in tests/test_catalog_hub.py)."""
    assert await manager.rebuild_removed("nothing-of-that-name") is None
    source = FakeSource("https://example.org/r", {"main": SHA1})
    done = await finished(manager, (await manager.submit(request("env", source))).id)
    assert await manager.rebuild_removed("env") is None  # its image is there
    catalog.sync({}, {})  # the engine no longer has it
    with pytest.raises(Conflict):
        catalog.launch_plan(ALICE, "env")
    with catalog.transaction() as db:  # a build with credentials cannot be made again
        from tljh_rees.store.models import Build

        db.get(Build, done.id).private = True
    assert await manager.rebuild_removed("env") is None
