"""A development Hub with exactly the configuration the plugin gives under TLJH.

``tljh-rees demo`` writes a small ``jupyterhub_config.py`` into the state directory
that calls :func:`demo_config`; that applies what TLJH itself would (a config of its
own, then the plugin's hook through :func:`tljh_rees.hubconfig.configure_hub`), plus
what TLJH's installer normally provides: an authenticator, a proxy, file locations.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

from . import hubconfig
from .engine.baseimage import BaseImageRecipe, default_ca_bundle, ensure_base_image
from .engine.host import ensure_engine
from .plugin import load_settings
from .settings import merge_defaults

ADMIN = "admin"
PASSWORD_FILE = "admin-password"
CONFIG_TEMPLATE = """\
# Written by 'tljh-rees demo'; edit {rees_yaml} instead.
from tljh_rees.demo import demo_config
demo_config(c, {state_dir!r}, {ip!r}, {port!r}, {hub_port!r}, {proxy_api_port!r},
            require_password={require_password!r})
"""


def is_loopback(ip: str) -> bool:
    """Whether only this machine can reach ``ip`` ('' and 0.0.0.0 mean every address)."""
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def login_password(state_dir: str, ip: str, require: bool = False) -> str | None:
    """The demo login's password: None (any password) when only this machine can reach
    the Hub; otherwise a random one, kept in ``state_dir/admin-password`` (0600), since
    the login is ``admin`` and an admin here is root through Docker."""
    if is_loopback(ip) and not require:
        return None
    path = os.path.join(state_dir, PASSWORD_FILE)
    try:
        with open(path) as f:
            password = f.read().strip()
        if password:
            os.chmod(path, 0o600)
            return password
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


def tljh_config(state_dir: str) -> dict:
    """``rees.yaml`` in the state dir, shaped like TLJH's config.yaml (``rees:``, ``services:``)."""
    path = os.path.join(state_dir, "rees.yaml")
    if os.path.exists(path):
        with open(path) as f:
            return yaml.safe_load(f) or {}
    return {}


def rees_section(state_dir: str) -> dict:
    return tljh_config(state_dir).get("rees") or {}


def idle_culler(config: dict) -> dict | None:
    """TLJH's idle-culler service, from the same ``services.cull`` keys TLJH reads."""
    cull = {"enabled": True, "timeout": 600, "every": 60, **
            ((config.get("services") or {}).get("cull") or {})}
    if not cull["enabled"] or importlib.util.find_spec("jupyterhub_idle_culler") is None:
        return None
    return {"name": "cull-idle", "admin": True,
            "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                        f"--timeout={int(cull['timeout'])}", f"--cull-every={int(cull['every'])}"]}


def demo_defaults(state_dir: str, base_image: str) -> dict:
    return {
        "state_dir": os.path.join(state_dir, "rees"),
        "default_image": base_image,
        "builds": {"allow_local_repos": True, "ca_bundle": default_ca_bundle()},
        "profiles": {
            "small": {"cpu": 1, "memory": "1G", "description": "Small"},
            "medium": {"cpu": 2, "memory": "2G", "description": "Medium"},
        },
        "default_profile": "small",
    }


def demo_config(c, state_dir: str, ip: str, port: int, hub_port: int,
                proxy_api_port: int, require_password: bool = False) -> None:
    """Called from the generated jupyterhub_config.py (inside the Hub process)."""
    with open(os.path.join(state_dir, "base-image")) as f:
        base_image = f.read().strip()
    section = rees_section(state_dir)  # the admin's keys win over the demo's defaults
    merge_defaults(section, demo_defaults(state_dir, base_image))
    # What TLJH's own config would have set before calling the plugin's hook:
    c.JupyterHub.bind_url = f"http://{ip}:{port}"
    c.JupyterHub.hub_port = hub_port
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
    c.JupyterHub.db_url = f"sqlite:///{os.path.join(state_dir, 'jupyterhub.sqlite')}"
    c.JupyterHub.cookie_secret_file = os.path.join(state_dir, "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = os.path.join(state_dir, "jupyterhub.pid")
    c.ConfigurableHTTPProxy.pid_file = os.path.join(state_dir, "proxy.pid")
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.authenticator_class = "dummy"
    password = login_password(state_dir, ip, require_password)
    if password:
        c.DummyAuthenticator.password = password
    c.Authenticator.allow_all = True
    c.Authenticator.admin_users = {ADMIN}
    c.Spawner.default_url = "/lab"
    culler = idle_culler(tljh_config(state_dir))
    c.JupyterHub.services = [culler] if culler else []  # TLJH registers its culler first
    hubconfig.configure_hub(c, load_settings(section), python=sys.executable,
                            config_dir=state_dir)
    c.ReesSpawner.start_timeout = 120
    # Several demo Hubs (e.g. tests) may share one engine: keep their containers apart.
    c.ReesSpawner.name_template = f"rees-demo{port}-{{username}}--{{servername}}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"JupyterHub exited with code {proc.returncode}; see its log above")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.5)
    raise SystemExit(f"JupyterHub did not answer at {url} within {timeout:.0f}s")


def run_demo(state_dir: str, ip: str = "127.0.0.1", port: int = 8000,
             setup_engine: bool = True, require_password: bool = False) -> int:
    state_dir = os.path.abspath(state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    if not shutil.which("configurable-http-proxy"):
        raise SystemExit("configurable-http-proxy is missing: npm install -g "
                         "configurable-http-proxy (or run scripts/setup-host.sh)")
    if setup_engine:
        ensure_engine()
    section = rees_section(state_dir)
    mirror = {"mirror": section["base_image_mirror"]} if section.get("base_image_mirror") else {}
    recipe = BaseImageRecipe(ca_bundle=(section.get("builds") or {}).get("ca_bundle")
                             or default_ca_bundle(), **mirror)
    base_image = ensure_base_image(recipe, progress=lambda m: print(f"[base image] {m}",
                                                                    flush=True))
    with open(os.path.join(state_dir, "base-image"), "w") as f:
        f.write(base_image + "\n")
    config_file = os.path.join(state_dir, "jupyterhub_config.py")
    hub_port = free_port()
    with open(config_file, "w") as f:
        f.write(CONFIG_TEMPLATE.format(rees_yaml=os.path.join(state_dir, "rees.yaml"),
                                       state_dir=state_dir, ip=ip, port=port,
                                       hub_port=hub_port, proxy_api_port=free_port(),
                                       require_password=require_password))
    password = login_password(state_dir, ip, require_password)

    hub = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", config_file],
                           cwd=state_dir, start_new_session=True)

    def stop(*_):
        if hub.poll() is None:
            os.killpg(hub.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        _wait_for(f"http://{ip}:{port}/hub/api/", hub, timeout=120)
        token = subprocess.run(
            [sys.executable, "-m", "jupyterhub", "token", "-f", config_file, ADMIN],
            cwd=state_dir, capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        token_file = os.path.join(state_dir, "admin-token")
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        login = (f"the password in {os.path.join(state_dir, PASSWORD_FILE)}" if password
                 else "any password")
        print(f"\ntljh-rees demo Hub: http://{ip}:{port}/  (log in as '{ADMIN}', {login})\n"
              f"  environments: http://{ip}:{port}/services/rees/\n"
              f"  admin API token: {token_file}\n", flush=True)
        return hub.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
        _stop_proxy(state_dir)
        _stop_services(hub_port)


def _stop_services(hub_port: int) -> None:
    """Stop this Hub's managed services (e.g. the idle culler) if they outlived it.

    JupyterHub starts them in sessions of their own, so they are not in its process
    group; they are known by the Hub API address in their environment.
    """
    marker = f":{hub_port}/hub/api".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if any(e.startswith(b"JUPYTERHUB_API_URL=") and e.endswith(marker) for e in environ) \
                and any(e.startswith(b"JUPYTERHUB_SERVICE_NAME=") for e in environ):
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass


def _stop_proxy(state_dir: str) -> None:
    """JupyterHub leaves its proxy running when it dies before cleaning up: stop it."""
    try:
        with open(os.path.join(state_dir, "proxy.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"configurable-http-proxy" not in f.read():
                return  # the pid was reused by something else
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass
