"""The demo's login from outside: off loopback, ``admin`` with any password would be
root through Docker for anyone who can reach the port, so a random password is needed."""

from __future__ import annotations

import os
import re
import stat

import pytest
import requests
from traitlets.config import Config

from tests.helpers import start_demo_hub, stop_demo_hub
from tljh_rees.demo import PASSWORD_FILE, demo_config


def configured(state_dir, ip: str) -> Config:
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "base-image"), "w") as f:
        f.write("tljh-rees/base:test\n")
    c = Config()
    demo_config(c, str(state_dir), ip, 8000, 8081, 8001)
    return c


@pytest.mark.parametrize("ip", ["0.0.0.0", "", "::", "192.0.2.5", "demo.example.org"])
def test_off_loopback_the_login_needs_a_random_password(tmp_path, ip):
    c = configured(tmp_path, ip)
    path = tmp_path / PASSWORD_FILE
    password = path.read_text().strip()
    assert len(password) >= 24
    assert c.DummyAuthenticator.password == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the next start keeps it (it may have been handed out)
    assert configured(tmp_path, ip).DummyAuthenticator.password == password


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_on_loopback_any_password_still_works(tmp_path, ip):
    c = configured(tmp_path, ip)
    assert "password" not in c.DummyAuthenticator
    assert not (tmp_path / PASSWORD_FILE).exists()


def login(hub, password: str) -> requests.Response:
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    data = {"username": "admin", "password": password}
    if xsrf:
        data["_xsrf"] = xsrf.group(1)
    return session.post(f"{hub.url}/hub/login", data=data, allow_redirects=False, timeout=30)


def test_a_hub_with_the_password_refuses_a_wrong_one(base_image, tmp_path):
    state_dir = str(tmp_path / "hub")
    proc, hub = start_demo_hub(state_dir, {}, demo_args=("--require-password",))
    try:
        with open(os.path.join(state_dir, PASSWORD_FILE)) as f:
            password = f.read().strip()
        assert login(hub, "anything").status_code == 403
        assert login(hub, "").status_code == 403
        r = login(hub, password)
        assert r.status_code == 302, r.text[:500]
        with open(os.path.join(state_dir, "demo.log"), errors="replace") as f:
            assert f"the password in {os.path.join(state_dir, PASSWORD_FILE)}" in f.read()
    finally:
        stop_demo_hub(proc, hub)
