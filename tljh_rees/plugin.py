"""TLJH plugin hooks (found through the setuptools entry-point group ``tljh``).

Importable without TLJH installed: ``tljh.configurer`` is only imported when a hook
that needs the admin's config runs under TLJH.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pluggy

from . import hubconfig
from .settings import (
    DEFAULTS,
    SettingsError,
    machine_memory,
    merge_defaults,
    parse_settings,
)

hookimpl = pluggy.HookimplMarker("tljh")


def load_rees_section() -> dict:
    """The admin's ``rees`` section from TLJH's config.yaml."""
    from tljh.configurer import load_config

    return load_config().get("rees") or {}


def load_settings(raw: dict):
    """Validated settings, or exit with every problem named (no traceback at hub start)."""
    try:
        return parse_settings(raw, cpu_count=os.cpu_count(),
                              memory_total=machine_memory())
    except SettingsError as e:
        raise SystemExit(f"tljh-rees: {e}\nFix with 'tljh-config set rees.<key> <value>', "
                         "then 'tljh-config reload hub'.") from None


@hookimpl
def tljh_extra_apt_packages():
    from .engine.host import apt_packages

    return apt_packages()


@hookimpl
def tljh_extra_hub_pip_packages():
    return ["dockerspawner>=13,<15", "jupyter-repo2docker>=2025.8"]


@hookimpl
def tljh_config_post_install(config):
    if config.get("rees") is None:
        config["rees"] = {}
    if isinstance(config["rees"], dict):  # anything else is reported when the hub starts
        merge_defaults(config["rees"], DEFAULTS)


def tljh_config_dir() -> str:
    """TLJH's config folder (``tljh.config.CONFIG_DIR``, by the same rule)."""
    return os.path.join(os.environ.get("TLJH_INSTALL_PREFIX", "/opt/tljh"), "config")


@hookimpl
def tljh_custom_jupyterhub_config(c):
    hubconfig.configure_hub(c, load_settings(load_rees_section()), python=sys.executable,
                            config_dir=tljh_config_dir())


@hookimpl
def tljh_post_install():
    from .engine.host import ensure_engine, systemd_running

    settings = load_settings(load_rees_section())
    os.makedirs(settings.state_dir, mode=0o700, exist_ok=True)
    ensure_engine()
    if systemd_running():
        # TLJH starts the Hub before it runs this hook, i.e. before Docker was installed:
        # restart it so it listens at the Docker bridge its containers use.
        subprocess.run(["systemctl", "try-restart", "jupyterhub"], check=False)
