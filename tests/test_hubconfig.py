"""Settings -> JupyterHub configuration (pure logic; the hook tests apply it to a real Hub)."""

import json
import os
import sys

from jupyterhub.app import JupyterHub
from traitlets.config import Config

from tljh_rees import ADMIN_SCOPE, BUILD_SCOPE, METRICS_SCOPE, SERVICE_NAME
from tljh_rees.hubconfig import (
    SERVICE_CONFIG_ENV, configure_hub, read_service_config, service_config,
)
from tljh_rees.settings import parse_settings

ACCESS = f"access:services!service={SERVICE_NAME}"
CULLER = {"name": "cull-idle", "admin": True, "command": ["python3", "-m", "jupyterhub_idle_culler"]}


def settings(**rees):
    return parse_settings({"hub_ip": "192.0.2.10", **rees})


def hub_view(c: Config) -> JupyterHub:
    """The settings as JupyterHub resolves them (lazy appends included)."""
    return JupyterHub(config=c)


def roles_of(c: Config) -> dict:
    return {r["name"]: r for r in hub_view(c).load_roles}


def test_service_is_appended_after_tljhs_culler():
    c = Config()
    c.JupyterHub.services = [dict(CULLER)]
    configure_hub(c, settings(service={"ip": "127.0.0.1", "port": 7001}), python="/hub/python")
    culler, rees = hub_view(c).services
    assert culler == CULLER
    assert rees["name"] == SERVICE_NAME and rees["url"] == "http://127.0.0.1:7001"
    assert rees["command"] == ["/hub/python", "-m", "tljh_rees.service"]
    assert rees["oauth_client_allowed_scopes"] == [BUILD_SCOPE, ADMIN_SCOPE, METRICS_SCOPE,
                                                   "servers!user"]


def test_services_appended_lazily_by_others_are_kept():
    c = Config()
    c.JupyterHub.services.append(dict(CULLER))  # lazy: the list was never set
    c.JupyterHub.load_roles.append({"name": "user", "scopes": ["self", "read:users:name"]})
    configure_hub(c, settings())
    assert [s["name"] for s in hub_view(c).services] == ["cull-idle", SERVICE_NAME]
    user_roles = [r for r in hub_view(c).load_roles if r["name"] == "user"]
    assert user_roles == [{"name": "user", "scopes": ["self", "read:users:name", ACCESS]}]


def test_custom_scopes_are_added_to_existing_ones():
    c = Config()
    c.JupyterHub.custom_scopes = {"custom:other:thing": {"description": "Another plugin's"}}
    configure_hub(c, settings())
    scopes = hub_view(c).custom_scopes
    assert set(scopes) == {"custom:other:thing", BUILD_SCOPE, ADMIN_SCOPE,
                           METRICS_SCOPE}
    assert scopes[ADMIN_SCOPE]["subscopes"] == [BUILD_SCOPE, METRICS_SCOPE]
    assert scopes[METRICS_SCOPE]["description"]
    assert all(s["description"] for s in scopes.values())


def test_roles_for_the_service_builders_admins_and_every_user():
    c = Config()
    c.Authenticator.admin_users = {"root-admin", "ada"}
    configure_hub(c, settings(builders=["bob"], admins=["carol", "ada"]))
    roles = roles_of(c)
    assert roles["rees-service"]["services"] == [SERVICE_NAME]
    assert {"admin:servers", "admin:users"} <= set(roles["rees-service"]["scopes"])
    assert roles["rees-builders"]["users"] == ["bob"]
    assert roles["rees-builders"]["scopes"] == [BUILD_SCOPE]
    assert roles["rees-admins"]["users"] == ["ada", "carol", "root-admin"]
    assert roles["rees-admins"]["scopes"] == [ADMIN_SCOPE, METRICS_SCOPE]
    assert roles["user"]["scopes"] == ["self", ACCESS]


def test_the_user_role_someone_defined_keeps_its_scopes():
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    configure_hub(c, settings())
    user_roles = [r for r in hub_view(c).load_roles if r["name"] == "user"]
    assert user_roles == [{"name": "user", "scopes": ["self", "read:groups", ACCESS]}]


def test_hub_listens_where_containers_reach_it():
    c = Config()
    configure_hub(c, settings(hub_ip="10.9.8.7"))
    hub = hub_view(c)
    assert hub.hub_ip == hub.hub_connect_ip == "10.9.8.7"


def test_spawner_settings_override_tljhs_limits():
    c = Config()
    c.Spawner.mem_limit = "1G"
    c.Spawner.cpu_limit = 1.0
    c.Spawner.cmd = ["/opt/tljh/user/bin/jupyterhub-singleuser"]
    configure_hub(c, settings(
        state_dir="/srv/rees", default_image="rees-base:1",
        profiles={"small": {"cpu": 1, "memory": "2G"}}, default_profile="small",
        storage={"volume_name": "home-{username}", "path": "files"},
        data_mounts={"d": {"source": "/srv/data", "target": "/data"}}))
    assert c.JupyterHub.spawner_class == "tljh_rees.spawner.ReesSpawner"
    assert c.JupyterHub.allow_named_servers is True
    r = c.ReesSpawner
    assert (r.mem_limit, r.cpu_limit, r.cmd) == (None, None, ["jupyterhub-singleuser"])
    assert [p["name"] for p in r.profiles] == ["small"] and r.default_profile == "small"
    assert (r.volume_name_template, r.storage_path) == ("home-{username}", "files")
    assert r.data_mounts == [{"source": "/srv/data", "target": "/data", "readonly": True}]
    assert r.image == "rees-base:1"
    assert "state_dir" not in r  # the spawner reads environments from image labels only


def test_service_config_travels_in_the_environment_not_the_command(monkeypatch):
    s = settings(builds={"build_args": {"PIP_INDEX_URL": "https://user:s3cret@pypi.internal"},
                         "concurrency": 2},
                 profiles={"small": {"cpu": 1}}, default_profile="small")
    c = Config()
    configure_hub(c, s, python=sys.executable)
    (rees,) = hub_view(c).services
    assert "s3cret" not in json.dumps(rees["command"])
    monkeypatch.setenv(SERVICE_CONFIG_ENV, rees["environment"][SERVICE_CONFIG_ENV])
    received = read_service_config()
    assert received == service_config(s)
    assert received.Repo2DockerBuilder.build_args == {
        "PIP_INDEX_URL": "https://user:s3cret@pypi.internal"}
    assert received.ReesService.default_profile == "small"


def test_service_config_is_empty_without_the_variable(monkeypatch):
    monkeypatch.delenv(SERVICE_CONFIG_ENV, raising=False)
    assert read_service_config() == Config()


def test_service_address_comes_from_settings():
    s = settings(service={"ip": "127.0.0.2", "port": 7010})
    c = service_config(s)
    assert (c.ReesService.ip, c.ReesService.port) == ("127.0.0.2", 7010)


def test_export_registry_reaches_the_export_manager():
    from tljh_rees.hubconfig import service_config

    config = service_config(parse_settings({"export": {"registry": "oras://h:5000/x"}}))
    assert config.ExportManager.push_registry == "oras://h:5000/x"


def test_lab_extension_servers_reach_the_service_with_their_own_token():
    c = Config()
    configure_hub(c, settings(service={"ip": "127.0.0.1", "port": 7002}))
    server_role = roles_of(c)["server"]
    assert server_role["scopes"] == ["users:activity!user", "access:servers!server", ACCESS,
                                     BUILD_SCOPE]
    rees = hub_view(c).services[-1]
    assert rees["environment"]["TLJH_REES_SERVER_ADDRESS"] == "192.0.2.10"
    assert c.ReesSpawner.rees_address == "http://192.0.2.10:7002"
    assert os.path.isfile(os.path.join(c.ReesSpawner.lab_extension_path, "folder.py"))


def test_lab_extension_off_grants_and_mounts_nothing():
    c = Config()
    configure_hub(c, settings(lab_extension={"enabled": False}))
    assert "server" not in roles_of(c)
    assert "TLJH_REES_SERVER_ADDRESS" not in hub_view(c).services[-1]["environment"]
    assert not c.ReesSpawner.get("lab_extension_path")


def test_a_service_on_all_addresses_is_reached_at_the_bridge_without_a_second_socket():
    c = Config()
    configure_hub(c, settings(service={"ip": "0.0.0.0", "port": 7003}))
    assert "TLJH_REES_SERVER_ADDRESS" not in hub_view(c).services[-1]["environment"]
    assert c.ReesSpawner.rees_address == "http://192.0.2.10:7003"
