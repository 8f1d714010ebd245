"""The catalog's rules against a real SQLite database: who sees, who changes, which
profile, and that each write is one step."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tljh_rees.errors import Conflict, Forbidden, InputError, NotFound
from tljh_rees.store.models import Build, Environment

from .conftest import ADMIN, ALICE, BOB, READER



def add(catalog, viewer, name, repo="https://example.org/r", public=True, built=True,
        profile=None):
    with catalog.transaction() as db:
        env = catalog.claim(db, viewer, name, repo, public=public, profile=profile)
        if built:
            env.image, env.image_id, env.image_present = f"rees-{name}:abc", f"sha256:{name}", True
            env.commit = "a" * 40
    return env


def test_private_environments_are_seen_by_owner_and_admins_only(catalog):
    add(catalog, ALICE, "mine", public=False)
    add(catalog, BOB, "shared")
    for viewer, expected in ((ALICE, ["mine", "shared"]), (ADMIN, ["mine", "shared"]),
                             (BOB, ["shared"]), (READER, ["shared"])):
        assert [e.name for e, _ in catalog.page(viewer).items] == expected, viewer
    with pytest.raises(NotFound):
        catalog.get(BOB, "mine")
    with pytest.raises(NotFound):
        catalog.launch_plan(READER, "mine")
    assert catalog.launch_plan(ALICE, "mine").image == "sha256:mine"


def test_a_name_belongs_to_whoever_claimed_it_first(catalog):
    add(catalog, ALICE, "taken")
    with catalog.transaction() as db, pytest.raises(Forbidden):
        catalog.claim(db, BOB, "taken", "https://example.org/r")
    with catalog.transaction() as db:  # an admin may rebuild it; it stays Alice's
        assert catalog.claim(db, ADMIN, "taken", "https://example.org/r").owner == "alice"
    with catalog.transaction() as db, pytest.raises(Conflict):
        catalog.claim(db, ALICE, "taken", "https://example.org/other")


def test_readers_may_not_change_even_their_own_names(catalog):
    add(catalog, ALICE, "env")
    with pytest.raises(Forbidden):
        catalog.update(READER, "env", {"public": False})
    with pytest.raises(Forbidden):
        catalog.update(BOB, "env", {"public": False})
    assert catalog.update(ALICE, "env", {"public": False}).public is False
    with pytest.raises(NotFound):  # now private: Bob cannot even see it
        catalog.update(BOB, "env", {"public": True})


def test_patch_validates_everything_before_writing(catalog):
    add(catalog, ALICE, "env", profile="large")
    for changes, field in (({"profile": "huge"}, "profile"), ({"public": "yes"}, "public"),
                           ({"display_name": 3}, "display_name"),
                           ({"description": "x" * 3000}, "description"),
                           ({"owner": "bob"}, "owner")):
        with pytest.raises(InputError) as e:
            catalog.update(ALICE, "env", {"display_name": "changed", **changes})
        assert e.value.field == field
    env = catalog.get(ALICE, "env")
    assert env.display_name == "" and env.profile == "large"
    # profile null means: the site's default
    assert catalog.update(ALICE, "env", {"profile": None}).profile == ""


def test_profile_rule(catalog):
    add(catalog, ALICE, "big", profile="large")
    add(catalog, ALICE, "plain")
    assert catalog.launch_plan(BOB, "big").profile["name"] == "large"
    assert catalog.launch_plan(BOB, "big", "small").profile["name"] == "small"
    assert catalog.launch_plan(BOB, "plain").profile["name"] == "small"  # site default
    with pytest.raises(InputError) as e:
        catalog.launch_plan(BOB, "plain", "gone")
    assert e.value.field == "profile" and "small, large" in e.value.message
    # an environment default the admin removed falls back to the site's
    with catalog.transaction() as db:
        db.scalars(select(Environment).where(Environment.name == "big")).one().profile = "gone"
    assert catalog.launch_plan(BOB, "big").profile["name"] == "small"


def test_unbuilt_or_missing_images_are_not_launchable(catalog):
    add(catalog, ALICE, "new", built=False)
    with pytest.raises(Conflict, match="no built image"):
        catalog.launch_plan(ALICE, "new")
    add(catalog, ALICE, "gone")
    assert catalog.sync({}, {}) == ["gone"]
    with pytest.raises(Conflict, match="removed"):
        catalog.launch_plan(ALICE, "gone")
    catalog.sync({"sha256:gone": 5}, {})
    assert catalog.launch_plan(ALICE, "gone").image == "sha256:gone"
    assert catalog.get(ALICE, "gone").image_size == 5


def test_search_and_pages(catalog):
    for i in range(25):
        add(catalog, ALICE if i % 2 else BOB, f"env-{i:02d}",
            repo=f"https://example.org/{'astro' if i < 5 else 'bio'}/{i}")
    page = catalog.page(READER, offset=10, limit=10)
    assert page.total == 25 and [e.name for e, _ in page.items][0] == "env-10"
    assert len(page.items) == 10
    assert catalog.page(READER, search="ASTRO").total == 5
    assert catalog.page(READER, search="astro env-03").total == 1
    assert catalog.page(READER, owner="alice").total == 12
    assert catalog.page(READER, search="%").total == 0  # taken literally
    assert catalog.page(READER, limit=10_000).limit == 200


def test_remove_takes_builds_along_and_frees_the_name(catalog):
    env = add(catalog, ALICE, "env")
    with catalog.transaction() as db:
        db.add(Build(id="b1", environment_id=env.id, environment="env", repo=env.repo))
    with pytest.raises(Forbidden):
        catalog.remove(BOB, "env")
    removed, build_ids = catalog.remove(ALICE, "env")
    assert build_ids == ["b1"] and removed.id == env.id
    with catalog.session() as db:
        assert db.get(Build, "b1") is None
    again = add(catalog, BOB, "env", public=False)
    assert again.id != env.id and again.owner == "bob"
    assert catalog.builds(BOB, "env") == []


def test_builds_are_seen_as_their_environment_is(catalog):
    env = add(catalog, ALICE, "private", public=False)
    with catalog.transaction() as db:
        db.add(Build(id="b2", environment_id=env.id, environment="private", repo=env.repo))
    assert catalog.build(ALICE, "b2").id == "b2"
    with pytest.raises(NotFound):
        catalog.build(BOB, "b2")
    assert catalog.builds(BOB) == [] and len(catalog.builds(ADMIN)) == 1
