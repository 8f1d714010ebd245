"""The composer's Add-on services section: ``.rees/services.json`` at the spec's root
(even when REES files live in ``binder/``), checked against the site's offer with the
field named, read back; and the real ``repo2docker --no-build`` puts the clients'
install line at the end of the Dockerfile it generates for such a spec."""

from __future__ import annotations

import json
import os

import pytest

from tljh_rees.builds.declared import client_packages, read_declared
from tljh_rees.builds.repo2docker import client_appendix, uses_dockerfile
from tljh_rees.composer.archive import Imported
from tljh_rees.composer.service import Composer, InvalidSpec
from tljh_rees.composer.validate import validate

from .test_composer_files import checkout, repo2docker_dockerfile
from .test_env_services import offer

SERVICES = json.dumps([{"name": "postgres", "params": {"database": "lab"}},
                       {"name": "redis"}], indent=2)


@pytest.fixture
def composer(tmp_path):
    return Composer(str(tmp_path / "specs"), offer("postgres", "redis"))


def test_the_section_is_written_at_the_root_and_read_back(composer, tmp_path):
    composer.create("db", "alice", {"requirements": "numpy\n", "services": SERVICES})
    spec = composer.spec("db")
    assert spec["sections"]["services"] == SERVICES
    assert spec["section_files"]["services"] == ".rees/services.json"
    assert spec["problems"] == []
    directory = checkout(composer, "db", tmp_path)
    with open(os.path.join(directory, ".rees", "services.json")) as f:
        assert f.read() == SERVICES
    # emptied: the file goes
    composer.save("db", "alice", {"requirements": "numpy\n", "services": ""})
    (tmp_path / "b").mkdir()
    assert not os.path.exists(os.path.join(checkout(composer, "db", tmp_path / "b"),
                                           ".rees", "services.json"))


def test_a_binder_folder_leaves_the_declaration_at_the_root(composer, tmp_path):
    composer.import_files("bind", "alice", Imported(files={
        "binder/requirements.txt": b"numpy\n",
        ".rees/services.json": b'[{"name": "redis"}]'}), replace=False)
    spec = composer.spec("bind")
    assert spec["config_dir"] == "binder"
    assert spec["sections"]["services"] == '[{"name": "redis"}]'
    composer.save("bind", "alice", {"requirements": "numpy\n", "services": SERVICES})
    directory = checkout(composer, "bind", tmp_path)
    assert sorted(os.listdir(directory)) == [".rees", "binder"]


@pytest.mark.parametrize("text,line,message", [
    ('[\n  {"name": "redis",\n   "params": {"maxmemory": "1K"}}\n]', 2,
     "services[0].params.maxmemory: expected a size"),
    ('[{"name": "redis"},\n {"name": "mysql"}]', 2, "services[1].name: 'mysql' is an unknown"),
    ('{"name": "redis"}', None, "services: expected a list"),
    ('[{"name": "redis",}]', 1, "not valid JSON"),
])
def test_problems_name_the_field(text, line, message):
    (problem,) = validate({"services": text}, services=offer("postgres", "redis"))
    assert (problem.section, problem.line, problem.severity) == ("services", line, "error")
    assert problem.message.startswith(message), problem.message
    assert problem.to_dict()["file"] == ".rees/services.json"


def test_errors_block_saving_and_a_site_without_services_refuses_them(tmp_path):
    bare = Composer(str(tmp_path / "specs"))
    with pytest.raises(InvalidSpec) as e:
        bare.create("db", "alice", {"services": '[{"name": "redis"}]'})
    assert "services[0].name" in e.value.message and "not enabled" in e.value.message


def test_with_a_dockerfile_the_clients_are_the_dockerfiles_to_install():
    problems = validate({"dockerfile": "FROM busybox\n", "services": '[{"name": "redis"}]'},
                        services=offer("redis"))
    assert [(p.section, p.severity) for p in problems] == [("services", "warning")]
    assert "install them in the Dockerfile" in problems[0].message


def test_repo2docker_appends_the_clients_install_line(composer, tmp_path):
    """The composer's spec, as a build reads it: the appendix in repo2docker's own output."""
    composer.create("db", "alice", {"requirements": "numpy\n", "services": SERVICES})
    directory = checkout(composer, "db", tmp_path)
    site = offer("postgres", "redis")
    declared = read_declared(directory, site)
    packages = client_packages(declared.services, site)
    assert packages == ["psycopg[binary]>=3.1", "redis>=5"] and not uses_dockerfile(directory)
    dockerfile = repo2docker_dockerfile(directory, "--appendix", client_appendix(packages))
    last = dockerfile.strip().splitlines()[-1]
    assert last == ('RUN "${KERNEL_PYTHON_PREFIX:-${NB_PYTHON_PREFIX}}/bin/python" -m pip '
                    "install --no-cache-dir 'psycopg[binary]>=3.1' 'redis>=5'"), dockerfile
    assert dockerfile.index('-r "requirements.txt"') < dockerfile.index("'redis>=5'")
