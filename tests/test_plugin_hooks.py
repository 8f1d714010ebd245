"""The TLJH hooks, called the way TLJH calls them, and their result applied to a real Hub.

TLJH is not on PyPI, so the few parts of it a plugin meets are stood in for by a tiny
``tljh`` package written by the ``tljh`` fixture: its hookspecs (the exact names and
argument names of TLJH's), a ``configurer.load_config()`` that reads
``$TLJH_INSTALL_PREFIX/config/config.yaml`` and an ``apply_config()`` that sets what
TLJH's own config sets before the plugins' hook (an idle-culler service, limits, admin
users), and a ``jupyterhub_config.py`` with TLJH's order. Everything else is real:
pluggy, the plugin loaded through its installed entry point, JupyterHub, DockerSpawner.
"""

from __future__ import annotations

import copy
import importlib
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points, version

import pluggy
import pytest
import yaml
from jupyterhub import orm, roles, scopes
from jupyterhub.app import JupyterHub
from packaging.requirements import Requirement
from traitlets.config import Config, LazyConfigValue, PyFileConfigLoader

import tljh_rees.plugin
from tljh_rees import ADMIN_SCOPE, BUILD_SCOPE, METRICS_SCOPE, SERVICE_NAME
from tljh_rees.engine.docker import bridge_gateway
from tljh_rees.settings import DEFAULTS
from tljh_rees.spawner import ReesSpawner

HOOKSPECS = '''\
"""TLJH's hook specifications: the same names and argument names."""
import pluggy

hookspec = pluggy.HookspecMarker("tljh")


@hookspec
def tljh_extra_user_conda_packages():
    """Conda packages for the user environment."""


@hookspec
def tljh_extra_user_conda_channels():
    """Conda channels for the user environment."""


@hookspec
def tljh_extra_user_pip_packages():
    """Pip packages for the user environment."""


@hookspec
def tljh_extra_hub_pip_packages():
    """Pip packages for the hub environment."""


@hookspec
def tljh_extra_apt_packages():
    """Apt packages installed on the machine."""


@hookspec
def tljh_custom_jupyterhub_config(c):
    """Change the JupyterHub config ``c``."""


@hookspec
def tljh_config_post_install(config):
    """Change the on-disk config.yaml (a dict) in place after installation."""


@hookspec
def tljh_post_install():
    """Run after installation and after all other hooks."""


@hookspec
def tljh_new_user_create(username):
    """Run after a new user was added."""
'''

CONFIGURER = '''\
"""Stand-in for tljh.configurer: reads config.yaml; sets what TLJH's config sets."""
import os
import sys

import yaml

CONFIG_FILE = os.path.join(os.environ.get("TLJH_INSTALL_PREFIX", "/opt/tljh"),
                           "config", "config.yaml")


def load_config(config_file=CONFIG_FILE):
    if not os.path.exists(config_file):
        return {}
    with open(config_file) as f:
        return yaml.safe_load(f) or {}


def apply_config(config, c):
    users = config.get("users") or {}
    limits = config.get("limits") or {}
    c.Authenticator.admin_users = set(users.get("admin") or [])
    c.Spawner.mem_limit = limits.get("memory")
    c.Spawner.cpu_limit = limits.get("cpu")
    c.Spawner.cmd = ["/opt/tljh/user/bin/jupyterhub-singleuser"]
    c.Spawner.default_url = "/lab"
    c.JupyterHub.services = []
    c.JupyterHub.services.append({
        "name": "cull-idle", "admin": True,
        "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--timeout=600"],
    })
'''

HUB_CONFIG = '''\
"""Stand-in for TLJH's jupyterhub_config.py: its config, then the plugins' hook."""
import pluggy

from tljh import configurer, hooks

c = get_config()  # noqa: F821 (given by traitlets' config loader)
c.JupyterHub.cleanup_servers = False
c.JupyterHub.hub_port = 15001
configurer.apply_config(configurer.load_config(), c)

pm = pluggy.PluginManager("tljh")
pm.add_hookspecs(hooks)
pm.load_setuptools_entrypoints("tljh")
pm.hook.tljh_custom_jupyterhub_config(c=c)
'''


class FakeTLJH:
    """The stand-in ``tljh`` package and its install prefix (config.yaml lives there)."""

    def __init__(self, root):
        self.path = str(root / "python")
        self.prefix = root / "tljh"
        package = root / "python" / "tljh"
        package.mkdir(parents=True)
        (self.prefix / "config").mkdir(parents=True)
        for name, text in {"__init__.py": "", "hooks.py": HOOKSPECS,
                           "configurer.py": CONFIGURER, "jupyterhub_config.py": HUB_CONFIG}.items():
            (package / name).write_text(text)
        self.hub_config = str(package / "jupyterhub_config.py")

    def write_config(self, config: dict) -> None:
        (self.prefix / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    def plugin_manager(self) -> pluggy.PluginManager:
        """What TLJH's installer and jupyterhub_config.py do to find plugins."""
        pm = pluggy.PluginManager("tljh")
        pm.add_hookspecs(importlib.import_module("tljh.hooks"))
        pm.load_setuptools_entrypoints("tljh")
        return pm

    def tljh_jupyterhub_config(self) -> Config:
        """The Config TLJH's jupyterhub_config.py produces, loaded as JupyterHub loads it."""
        loader = PyFileConfigLoader(os.path.basename(self.hub_config),
                                    path=os.path.dirname(self.hub_config))
        return loader.load_config()


@pytest.fixture
def tljh(tmp_path, monkeypatch):
    fake = FakeTLJH(tmp_path)
    monkeypatch.setenv("TLJH_INSTALL_PREFIX", str(fake.prefix))
    monkeypatch.syspath_prepend(fake.path)
    yield fake
    for name in [m for m in sys.modules if m == "tljh" or m.startswith("tljh.")]:
        del sys.modules[name]


@pytest.fixture
def rees_state(tmp_path):
    return str(tmp_path / "state" / "rees")


def tljh_yaml(rees: dict, state_dir: str) -> dict:
    return {"users": {"admin": ["admin"]}, "limits": {"memory": "1G", "cpu": 1},
            "rees": {"state_dir": state_dir, **rees}}


def resolved(value, default=()):
    """A list setting as JupyterHub will see it (appends to an unset list are lazy)."""
    return value.get_value(list(default)) if isinstance(value, LazyConfigValue) else value


def flat(results: list[list[str]]) -> list[str]:
    return [item for result in results for item in result]


# -- finding the plugin ------------------------------------------------------------------------

def test_plugin_is_found_through_its_entry_point(tljh):
    (ep,) = [ep for ep in entry_points(group="tljh") if ep.name == "rees"]
    assert ep.value == "tljh_rees.plugin" and ep.dist.name == "tljh-rees"
    pm = tljh.plugin_manager()
    assert pm.get_plugin("rees") is tljh_rees.plugin
    pm.check_pending()  # every hookimpl of ours matches one of TLJH's hookspecs
    implemented = {impl.plugin_name for hook in ("tljh_extra_apt_packages",
                                                  "tljh_extra_hub_pip_packages",
                                                  "tljh_config_post_install",
                                                  "tljh_custom_jupyterhub_config",
                                                  "tljh_post_install")
                   for impl in getattr(pm.hook, hook).get_hookimpls()}
    assert implemented == {"rees"}


def apt_candidate(package: str) -> bool:
    out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    return any(line.strip().startswith("Candidate:") and "(none)" not in line
               for line in out.splitlines())


def test_extra_apt_packages_are_the_engine_and_buildx_where_apt_has_it(tljh):
    packages = flat(tljh.plugin_manager().hook.tljh_extra_apt_packages())
    expected = ["docker.io"] + (["docker-buildx"] if apt_candidate("docker-buildx") else [])
    assert packages == expected


def test_extra_hub_pip_packages_are_requirements_the_hub_env_meets(tljh):
    requirements = [Requirement(r) for r in
                    flat(tljh.plugin_manager().hook.tljh_extra_hub_pip_packages())]
    assert {r.name for r in requirements} == {"dockerspawner", "jupyter-repo2docker"}
    for r in requirements:
        assert r.specifier.contains(version(r.name), prereleases=True), r


# -- tljh_config_post_install ------------------------------------------------------------------

def test_config_post_install_fills_defaults_into_a_new_config(tljh):
    config = {}
    tljh.plugin_manager().hook.tljh_config_post_install(config=config)
    assert config == {"rees": DEFAULTS}
    assert yaml.safe_load(yaml.safe_dump(config)) == config  # TLJH writes it back as YAML


def test_config_post_install_never_overwrites_the_admins_keys(tljh):
    config = {"users": {"admin": ["ada"]},
              "rees": {"state_dir": "/srv/rees", "builds": {"concurrency": 2},
                       "profiles": {"gpu": {"cpu": 2, "memory": "8G"}}}}
    before = copy.deepcopy(config)
    pm = tljh.plugin_manager()
    pm.hook.tljh_config_post_install(config=config)
    rees = config["rees"]
    assert config["users"] == before["users"]
    assert rees["state_dir"] == "/srv/rees"
    assert rees["builds"] == {"concurrency": 2, "allow_local_repos": False}
    assert rees["profiles"] == before["rees"]["profiles"] and "default_profile" not in rees
    assert rees["storage"] == DEFAULTS["storage"]
    again = copy.deepcopy(config)
    pm.hook.tljh_config_post_install(config=again)
    assert again == config


def test_config_post_install_with_an_empty_rees_key(tljh):
    config = {"rees": None}
    tljh.plugin_manager().hook.tljh_config_post_install(config=config)
    assert config["rees"] == DEFAULTS


# -- tljh_custom_jupyterhub_config -------------------------------------------------------------

def tljh_like_config() -> Config:
    """What TLJH's own config has put into ``c`` when the plugins' hook runs."""
    configurer = importlib.import_module("tljh.configurer")
    c = Config()
    configurer.apply_config(configurer.load_config(), c)
    return c


def test_custom_jupyterhub_config_adds_to_tljhs_config(tljh, rees_state):
    tljh.write_config(tljh_yaml({"builders": ["bob"],
                                 "profiles": {"small": {"cpu": 1, "memory": "2G"}},
                                 "default_profile": "small"}, rees_state))
    c = tljh_like_config()
    tljh.plugin_manager().hook.tljh_custom_jupyterhub_config(c=c)

    services = {s["name"]: s for s in resolved(c.JupyterHub.services)}
    assert list(services) == ["cull-idle", SERVICE_NAME]
    assert services[SERVICE_NAME]["command"][1:] == ["-m", "tljh_rees.service"]
    assert set(c.JupyterHub.custom_scopes) == {BUILD_SCOPE, ADMIN_SCOPE, METRICS_SCOPE}
    roles = {r["name"]: r for r in resolved(c.JupyterHub.load_roles)}
    assert roles["rees-service"]["services"] == [SERVICE_NAME]
    assert roles["rees-builders"]["users"] == ["bob"]
    assert roles["rees-admins"]["users"] == ["admin"]
    assert f"access:services!service={SERVICE_NAME}" in roles["user"]["scopes"]
    assert c.JupyterHub.spawner_class == "tljh_rees.spawner.ReesSpawner"
    assert c.JupyterHub.allow_named_servers is True
    assert c.ReesSpawner.profiles[0]["memory"] == 2 * 1024**3
    assert c.JupyterHub.hub_ip == c.JupyterHub.hub_connect_ip == (bridge_gateway() or "0.0.0.0")


@pytest.fixture
def restore_scopes():
    """Custom scopes are defined in a module-level dict; leave it as it was."""
    saved = copy.deepcopy(scopes.scope_definitions)
    yield
    scopes.scope_definitions = saved


async def test_a_real_hub_initializes_with_the_config(tljh, rees_state, tmp_path, monkeypatch,
                                                      restore_scopes):
    tljh.write_config(tljh_yaml({"builders": ["bob"], "admins": ["carol"],
                                 "profiles": {"small": {"cpu": 1, "memory": "2G"}},
                                 "default_profile": "small"}, rees_state))
    c = tljh.tljh_jupyterhub_config()
    # What TLJH's installer provides around its config (an authenticator, file locations):
    c.JupyterHub.authenticator_class = "dummy"
    c.JupyterHub.db_url = f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(tmp_path / "cookie_secret")
    monkeypatch.chdir(tmp_path)  # no jupyterhub_config.py here for initialize() to load

    app = JupyterHub(config=c)
    try:
        await app.initialize([])  # everything up to starting the proxy, services and servers
        assert app.spawner_class is ReesSpawner
        assert set(app._service_map) == {"cull-idle", SERVICE_NAME}
        assert app._service_map[SERVICE_NAME].managed

        def scopes_of(orm_entity) -> set[str]:
            return scopes.get_scopes_for(orm_entity)

        def grants(granted: set[str], scope: str) -> bool:
            """Whether ``granted`` holds ``scope`` itself or its unfiltered form."""
            return scope in granted or scope.split("!")[0] in granted

        db = app.db
        service = orm.Service.find(db, SERVICE_NAME)
        assert "rees-service" in [r.name for r in service.roles]
        assert {"admin:servers", "list:users"} <= scopes_of(service)

        access = f"access:services!service={SERVICE_NAME}"
        alice = orm.User(name="alice")  # a user as the Hub adds one at first login
        db.add(alice)
        db.commit()
        roles.assign_default_roles(db, entity=alice)
        alice_scopes = scopes_of(alice)
        assert access in alice_scopes and BUILD_SCOPE not in alice_scopes
        assert BUILD_SCOPE in scopes_of(orm.User.find(db, "bob"))
        for admin in ("admin", "carol"):  # TLJH's admins and rees.admins
            granted = scopes_of(orm.User.find(db, admin))
            assert {ADMIN_SCOPE, BUILD_SCOPE} <= granted and grants(granted, access), admin

        user = app.users[orm.User.find(db, "admin")]
        spawner = user.get_spawner("")
        assert isinstance(spawner, ReesSpawner)
        assert spawner.mem_limit is None and spawner.cpu_limit is None  # not TLJH's limits
        assert spawner.cmd == ["jupyterhub-singleuser"]
        assert spawner.default_profile == "small" and spawner.profiles[0]["cpu"] == 1
        assert spawner.volume_name_template == "rees-home-{username}"
        assert spawner.storage_path == "work"
    finally:
        app.db.close() if app.db is not None else None
        JupyterHub.clear_instance()


def test_invalid_settings_stop_the_hook_with_the_key_named(tljh, rees_state):
    tljh.write_config(tljh_yaml({"profiles": {"small": {"memory": "banana"}},
                                 "gallery": {"show": "some"}}, rees_state))
    with pytest.raises(SystemExit) as info:
        tljh.plugin_manager().hook.tljh_custom_jupyterhub_config(c=tljh_like_config())
    message = str(info.value.code)
    assert "rees.profiles.small.memory: expected a size like 2G (at least 6M), got 'banana'" \
        in message
    assert "rees.gallery.show: expected all or public, got 'some'" in message
    assert "tljh-config set rees." in message


def test_a_hub_with_invalid_settings_exits_without_a_traceback(tljh, rees_state, tmp_path):
    tljh.write_config(tljh_yaml({"profiles": {"small": {"memory": "banana"}}}, rees_state))
    env = dict(os.environ, PYTHONPATH=tljh.path, TLJH_INSTALL_PREFIX=str(tljh.prefix))
    try:
        proc = subprocess.run([sys.executable, "-m", "jupyterhub", "-f", tljh.hub_config],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:  # it started instead of refusing the settings
        pytest.fail(f"JupyterHub did not exit: {e.stderr}")
    assert proc.returncode != 0
    assert "rees.profiles.small.memory: expected a size like 2G (at least 6M), got 'banana'" \
        in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


# -- tljh_post_install -------------------------------------------------------------------------

def test_post_install_makes_a_private_state_dir_and_a_running_engine(tljh, rees_state, engine):
    tljh.write_config(tljh_yaml({}, rees_state))
    tljh.plugin_manager().hook.tljh_post_install()
    assert os.stat(rees_state).st_mode & 0o777 == 0o700
    assert subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    assert subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0


def test_hookspecs_match_tljhs_documented_names():
    """Guards the stand-in itself: a typo here would make the other tests prove nothing."""
    names = [line.split("(")[0][4:] for line in textwrap.dedent(HOOKSPECS).splitlines()
             if line.startswith("def tljh_")]
    assert names == [
        "tljh_extra_user_conda_packages", "tljh_extra_user_conda_channels",
        "tljh_extra_user_pip_packages", "tljh_extra_hub_pip_packages",
        "tljh_extra_apt_packages", "tljh_custom_jupyterhub_config",
        "tljh_config_post_install", "tljh_post_install", "tljh_new_user_create"]
    assert "def tljh_custom_jupyterhub_config(c):" in HOOKSPECS
    assert "def tljh_config_post_install(config):" in HOOKSPECS
    assert "def tljh_new_user_create(username):" in HOOKSPECS
