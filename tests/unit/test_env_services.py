"""An environment's default add-on services: PATCH and its checks, launch plans, the
declaration in a repository's ``.rees/services.json`` read by builds (and recorded with
their outcome), and the client packages a repo2docker build installs — no Docker."""

from __future__ import annotations

import json
import os

import pytest

from tljh_rees.builds.declared import DECLARATION, client_packages, read_declared
from tljh_rees.builds.manager import BuildManager
from tljh_rees.builds.orphans import ProcessNotes
from tljh_rees.builds.repo2docker import Repo2DockerBuilder, client_appendix
from tljh_rees.catalog import Catalog, Profiles
from tljh_rees.errors import Conflict, Forbidden, InputError
from tljh_rees.fakes import FakeSource
from tljh_rees.services import ServiceCatalog
from tljh_rees.settings import parse_settings
from tljh_rees.store.db import open_database
from tljh_rees.store.logs import LogStore

from .conftest import ADMIN, ALICE, BOB, PROFILES
from .test_build_queue import SHA1, SHA2, finished, request
from .test_catalog import add

REDIS = {"name": "redis", "version": "7",
         "params": {"maxmemory": "64M", "maxmemory_policy": "noeviction", "appendonly": False}}
POSTGRES = {"name": "postgres", "version": "15",
            "params": {"database": "notebook", "max_connections": 20, "shared_buffers": "32M"}}


def offer(*names) -> ServiceCatalog:
    settings = parse_settings({"services": {n: {"enabled": True} for n in names}})
    return ServiceCatalog({s.name: s for s in settings.services})


@pytest.fixture
def site(tmp_path):
    """A catalog whose site offers postgres and redis."""
    sessions = open_database(f"sqlite:///{tmp_path / 'rees.sqlite'}")
    return Catalog(sessions, Profiles(PROFILES, default="small"), offer("postgres", "redis"))


# -- PATCH and launch plans -----------------------------------------------------------------

def test_patched_services_are_checked_normalized_and_launched(site):
    add(site, ALICE, "lab")
    assert site.launch_plan(BOB, "lab").services == ()
    env = site.update(ALICE, "lab", {"services": [{"name": "redis"}]})
    assert json.loads(env.services) == [REDIS]
    plan = site.launch_plan(BOB, "lab")
    assert plan.services == (REDIS,) and plan.image == "sha256:lab"
    site.update(ADMIN, "lab", {"services": []})  # an admin too; [] for none
    assert site.launch_plan(ALICE, "lab").services == ()


@pytest.mark.parametrize("services,field", [
    ([{"name": "redis", "params": {"maxmemory": "1K"}}], "services[0].params.maxmemory"),
    ([{"name": "redis", "params": {"nope": 1}}], "services[0].params.nope"),
    ([{"name": "redis"}, {"name": "mysql"}], "services[1].name"),
    ([{"name": "redis", "version": "6"}], "services[0].version"),
    ([{"name": "redis"}, {"name": "redis"}], "services[1].name"),
    ({"name": "redis"}, "services"),
    (None, "services"),
])
def test_bad_services_are_refused_naming_the_field(site, services, field):
    add(site, ALICE, "lab")
    with pytest.raises(InputError) as e:
        site.update(ALICE, "lab", {"services": services})
    assert e.value.field == field
    assert site.launch_plan(ALICE, "lab").services == ()


def test_only_the_owner_or_an_admin_sets_services(site):
    add(site, ALICE, "lab")
    with pytest.raises(Forbidden):
        site.update(BOB, "lab", {"services": [{"name": "redis"}]})


def test_a_site_without_the_service_refuses_it(catalog):
    add(catalog, ALICE, "lab")  # the unit tier's catalog offers no services
    with pytest.raises(InputError) as e:
        catalog.update(ALICE, "lab", {"services": [{"name": "redis"}]})
    assert e.value.field == "services[0].name" and "not enabled" in e.value.message


def test_a_service_the_site_stopped_offering_stops_the_launch_with_a_reason(site, tmp_path):
    add(site, ALICE, "lab")
    site.update(ALICE, "lab", {"services": [{"name": "redis"}, {"name": "postgres"}]})
    later = Catalog(site.sessions, site.profiles, offer("postgres"))
    with pytest.raises(Conflict) as e:
        later.launch_plan(ALICE, "lab")
    assert "'redis'" in e.value.message and e.value.field == "environment"


# -- the repository's declaration -----------------------------------------------------------

def write(folder, text, name=DECLARATION):
    os.makedirs(os.path.join(folder, os.path.dirname(name)), exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)


def test_reading_a_declaration(tmp_path):
    services = offer("postgres", "redis")
    assert read_declared(str(tmp_path), services).services is None  # no file: nothing
    assert read_declared(str(tmp_path), services).note == ""
    write(tmp_path, json.dumps([{"name": "postgres"}, {"name": "redis"}]))
    declared = read_declared(str(tmp_path), services)
    assert declared.services == [POSTGRES, REDIS]
    assert "postgres 15, redis 7" in declared.note
    write(tmp_path, "[]")
    assert read_declared(str(tmp_path), services).services == []


@pytest.mark.parametrize("text,why", [
    ('[{"name": "redis", "params": {"maxmemory": "9G"}}]', "services[0].params.maxmemory:"),
    ('[{"name": "mysql"}]', "services[0].name:"),
    ('{"services": []}', "services: expected a list"),
    ("[{", "not valid JSON"),
])
def test_a_bad_declaration_is_not_taken_and_says_why(tmp_path, text, why):
    write(tmp_path, text)
    declared = read_declared(str(tmp_path), offer("postgres", "redis"))
    assert declared.services is None
    assert why in declared.note and "was not taken" in declared.note


def test_a_declaration_must_be_the_repositorys_own_file(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text('[{"name": "redis"}]')
    repo = tmp_path / "repo"
    (repo / ".rees").mkdir(parents=True)
    (repo / ".rees" / "services.json").symlink_to(outside)
    declared = read_declared(str(repo), offer("redis"))
    assert declared.services is None and "not a regular file" in declared.note


class DeclaringSource(FakeSource):
    """A fake repository whose versions also hold a ``.rees/services.json`` text."""

    def __init__(self, repo, versions, declarations):
        super().__init__(repo, versions)
        self.declarations = declarations  # version -> the file's text (absent: no file)

    async def fetch(self, ref, dest, on_line=lambda line: None):
        version = await super().fetch(ref, dest, on_line)
        if version in self.declarations:
            write(dest, self.declarations[version])
        return version


@pytest.fixture
async def site_manager(site, images, builder, tmp_path):
    logs = LogStore(directory=str(tmp_path / "logs"))
    manager = BuildManager(site, logs, builder, images, ProcessNotes(str(tmp_path / "run")))
    await manager.start()
    yield manager
    await manager.shutdown()


def log_text(manager, build_id) -> str:
    return "".join(e.get("message", "") for e in manager.logs.read(build_id))


async def test_a_build_sets_the_declared_services_and_a_new_build_replaces_them(
        site, site_manager, builder):
    source = DeclaringSource("https://example.org/r", {"main": SHA1, "next": SHA2},
                             {SHA1: '[{"name": "postgres"}, {"name": "redis"}]',
                              SHA2: '[{"name": "redis"}]'})
    done = await finished(site_manager, (await site_manager.submit(
        request("lab", source))).id)
    assert done.status == "built"
    assert site.launch_plan(BOB, "lab").services == (POSTGRES, REDIS)
    assert builder.client_packages[done.image] == ["psycopg[binary]>=3.1", "redis>=5"]
    assert "declares the add-on services: postgres 15, redis 7" in log_text(site_manager,
                                                                           done.id)
    again = await finished(site_manager, (await site_manager.submit(
        request("lab", source, ref="next"))).id)
    assert again.status == "built"
    assert site.launch_plan(BOB, "lab").services == (REDIS,)
    assert builder.client_packages[again.image] == ["redis>=5"]
    # another environment reusing that image (no build) gets the declaration too
    copy = await site_manager.submit(request("copy", source, viewer=BOB, ref="next"))
    assert copy.status == "built" and copy.cache_hit
    assert site.launch_plan(BOB, "copy").services == (REDIS,)


async def test_a_bad_declaration_keeps_the_services_and_the_build(site, site_manager, builder):
    source = DeclaringSource("https://example.org/r", {"main": SHA1, "next": SHA2},
                             {SHA2: '[{"name": "redis", "params": {"maxmemory": "1K"}}]'})
    done = await finished(site_manager, (await site_manager.submit(
        request("lab", source))).id)
    assert done.status == "built" and done.image not in builder.client_packages
    site.update(ALICE, "lab", {"services": [{"name": "postgres"}]})
    bad = await finished(site_manager, (await site_manager.submit(
        request("lab", source, ref="next"))).id)
    assert bad.status == "built"
    assert site.launch_plan(ALICE, "lab").services == (POSTGRES,)  # no file, bad file: kept
    text = log_text(site_manager, bad.id)
    assert "was not taken" in text and "services[0].params.maxmemory" in text


# -- client packages at build time ----------------------------------------------------------

def test_the_appendix_of_postgres_and_redis(tmp_path):
    packages = client_packages([POSTGRES, REDIS], offer("postgres", "redis"))
    assert packages == ["psycopg[binary]>=3.1", "redis>=5"]
    appendix = client_appendix(packages)
    assert appendix == ('RUN "${KERNEL_PYTHON_PREFIX:-${NB_PYTHON_PREFIX}}/bin/python" -m pip '
                        "install --no-cache-dir 'psycopg[binary]>=3.1' 'redis>=5'")
    (tmp_path / "requirements.txt").write_text("numpy\n")
    builder = Repo2DockerBuilder(command=["r2d"])
    argv = builder.argv(str(tmp_path), "rees-lab:1", "/tmp/c.json", packages)
    assert argv == ["r2d", "--config", "/tmp/c.json", "--json-logs", "--no-run",
                    "--user-id", "1000", "--user-name", "jovyan", "--image-name", "rees-lab:1",
                    "--appendix", appendix, str(tmp_path)]
    assert "--appendix" not in builder.argv(str(tmp_path), "rees-lab:1", "/tmp/c.json", [])
    assert client_packages(None, offer("redis")) == []


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "binder/Dockerfile",
                                        ".binder/Dockerfile"])
def test_no_appendix_for_a_dockerfile_repository(tmp_path, dockerfile):
    write(tmp_path, "FROM scratch\n", dockerfile)
    argv = Repo2DockerBuilder(command=["r2d"]).argv(str(tmp_path), "i", "c", ["redis>=5"])
    assert "--appendix" not in argv


def test_a_root_dockerfile_is_ignored_when_a_binder_folder_configures(tmp_path):
    write(tmp_path, "FROM scratch\n", "Dockerfile")
    write(tmp_path, "numpy\n", "binder/requirements.txt")
    argv = Repo2DockerBuilder(command=["r2d"]).argv(str(tmp_path), "i", "c", ["redis>=5"])
    assert "--appendix" in argv


@pytest.mark.parametrize("service,field", [
    ({"name": ["redis"]}, "services[0].name"),
    ({"name": "redis", "params": {"maxmemory": "9" * 5000}}, "services[0].params.maxmemory"),
    ({"name": "redis", "params": {"maxmemory": float("inf")}}, "services[0].params.maxmemory"),
    ({"name": "postgres", "params": {"max_connections": 10**400}},
     "services[0].params.max_connections"),
])
def test_odd_json_values_are_refused_by_field_not_crashed_on(site, service, field):
    add(site, ALICE, "lab")
    with pytest.raises(InputError) as e:
        site.update(ALICE, "lab", {"services": [service]})
    assert e.value.field == field and len(e.value.message) < 300
