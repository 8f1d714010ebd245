"""Add-on service images against the real Docker engine: each is built from the base
image's root filesystem (trusting the host's CA bundle), runs as its unprivileged user
on an internal network with the password only in its environment, reports healthy
through its health command, answers a client that has the password, and refuses one
that has not. Nothing of the password shows in ``docker inspect``, argv or the logs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest

from tljh_rees.engine.baseimage import default_ca_bundle
from tljh_rees.services import PASSWORD_ENV, kind_named
from tljh_rees.services.images import (
    SERVICE_LABEL,
    ServiceImageRecipe,
    ensure_service_image,
)

# Quotes, backslash, URL-reserved characters and a space: every layer must pass it as is.
PASSWORD = "p'w\"d\\ @/:x"
OTHER_PASSWORD = "second-start-" + uuid.uuid4().hex[:8]


def docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          **kwargs)


@pytest.fixture(scope="session")
def service_images(engine) -> dict[str, str]:
    """Both kinds' images, built if missing (the timings are printed)."""
    tags = {}
    for name, version in (("postgres", "15"), ("redis", "7")):
        recipe = ServiceImageRecipe(kind_named(name), version, ca_bundle=default_ca_bundle())
        started = time.monotonic()
        tags[name] = ensure_service_image(
            recipe, progress=lambda m: print(f"[service image] {m}", file=sys.stderr))
        print(f"\n[service image] {tags[name]}: {time.monotonic() - started:.1f}s "
              "(build, or a look-up if it existed)", file=sys.stderr)
    return tags


@pytest.fixture
def network():
    name = f"rees-svc-test-{uuid.uuid4().hex[:8]}"
    docker("network", "create", "--internal", name)
    try:
        yield name
    finally:
        docker("network", "rm", name, check=False)


def run_service(name: str, tag: str, network: str, password: str, mount: list[str]) -> str:
    kind = kind_named(name)
    version = tag.split(":")[1].split("-")[0]
    container = f"{network}-{name}"
    docker("run", "-d", "--name", container, "--network", network, "--network-alias", name,
           "-e", f"{PASSWORD_ENV}={password}", *mount, tag,
           *kind.command(version, kind.check_params({})))
    return container


def wait_healthy(name: str, container: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker("exec", container, *kind_named(name).health_command(),
                  check=False).returncode == 0:
            return
        if docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip() != "true":
            break
        time.sleep(0.5)
    logs = docker("logs", container, check=False)
    pytest.fail(f"{container} never became healthy:\n{logs.stdout}{logs.stderr}")


def client(tag: str, network: str, env: dict, script: str) -> subprocess.CompletedProcess:
    """A second container of the same image (it has psql / redis-cli) on the network."""
    flags = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
    return docker("run", "--rm", "--network", network, *flags, tag, "sh", "-c", script,
                  check=False, timeout=120)


def assert_password_hidden(container: str, password: str) -> None:
    info = json.loads(docker("inspect", container).stdout)[0]
    shown = json.dumps([info["Config"]["Cmd"], info["Config"]["Entrypoint"], info["Args"],
                        info["Path"], info["Config"]["Labels"]])
    assert password not in shown
    cmdline = docker("exec", container, "cat", "/proc/1/cmdline").stdout
    assert password not in cmdline
    logs = docker("logs", container)
    assert password not in logs.stdout + logs.stderr
    kind = kind_named(info["Config"]["Labels"][SERVICE_LABEL])
    assert info["Config"]["User"] == kind.user
    assert docker("exec", container, "id", "-u").stdout.strip() == str(kind.uid)


def remove(*containers: str) -> None:
    for container in containers:
        docker("rm", "-f", "-v", container, check=False)


def test_postgres_answers_with_the_password_only(service_images, network):
    tag, kind = service_images["postgres"], kind_named("postgres")
    volume = f"{network}-data"
    container = ""
    try:
        mount = ["-v", f"{volume}:{kind.data_dir}"]
        container = run_service("postgres", tag, network, PASSWORD, mount)
        wait_healthy("postgres", container)
        assert_password_hidden(container, PASSWORD)

        env = kind.connection_env("postgres", PASSWORD, kind.check_params({}))
        done = client(tag, network, env, "psql \"$DATABASE_URL\" -tAc "
                                         "'select current_user, current_database(), 1'")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "notebook|notebook|1"
        done = client(tag, network, {**env, "PGPASSWORD": "wrong"},
                      "psql -tAc 'select 1'")  # PGHOST, PGUSER, … with a wrong password
        assert done.returncode != 0 and "password authentication failed" in done.stderr

        # the data persists in the volume; the next start's password replaces the old one
        remove(container)
        container = run_service("postgres", tag, network, OTHER_PASSWORD, mount)
        wait_healthy("postgres", container)
        done = client(tag, network, env, "psql \"$DATABASE_URL\" -tAc 'select 1'")
        assert done.returncode != 0 and "password authentication failed" in done.stderr
        env = kind.connection_env("postgres", OTHER_PASSWORD, kind.check_params({}))
        done = client(tag, network, env, "psql \"$DATABASE_URL\" -tAc 'select 2'")
        assert done.returncode == 0 and done.stdout.strip() == "2", done.stderr
    finally:
        remove(container)
        docker("volume", "rm", volume, check=False)


def test_redis_answers_with_the_password_only(service_images, network):
    tag, kind = service_images["redis"], kind_named("redis")
    container = ""
    try:
        tmpfs = ["--tmpfs", f"{kind.data_dir}:{kind.tmpfs_options()}"]
        container = run_service("redis", tag, network, PASSWORD, tmpfs)
        wait_healthy("redis", container)
        assert_password_hidden(container, PASSWORD)

        script = "redis-cli -h redis set greeting hello && redis-cli -h redis get greeting"
        done = client(tag, network, {"REDISCLI_AUTH": PASSWORD}, script)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["OK", "hello"]
        done = client(tag, network, {"REDISCLI_AUTH": "wrong"}, "redis-cli -h redis get greeting")
        assert "hello" not in done.stdout
        assert "WRONGPASS" in done.stdout + done.stderr
        done = client(tag, network, {}, "redis-cli -h redis get greeting")
        assert "NOAUTH" in done.stdout + done.stderr
    finally:
        remove(container)


def test_a_service_refuses_to_start_without_a_password(service_images, network):
    for name in ("postgres", "redis"):
        kind = kind_named(name)
        done = docker("run", "--rm", "--network", network, service_images[name],
                      *kind.command(kind.versions[0], kind.check_params({})), check=False)
        assert done.returncode != 0 and f"{PASSWORD_ENV} must be set" in done.stderr
