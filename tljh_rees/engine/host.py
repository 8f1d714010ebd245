"""Install and start the Docker engine and its buildx plugin on Debian/Ubuntu.

Used by the TLJH hooks at install time and by ``tljh-rees setup-engine`` on a
development machine, so both take the same path.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time

log = logging.getLogger(__name__)

ENGINE_PACKAGE = "docker.io"
BUILDX_PACKAGE = "docker-buildx"
# Debian 12 has no buildx; Debian 13's package is a static binary that works with its engine.
BUILDX_FALLBACK_SUITE = "deb http://deb.debian.org/debian trixie main"
DOCKERD_LOG = "/var/log/tljh-rees-dockerd.log"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(cmd, check=True, env=env, **kwargs)


def apt_has_candidate(package: str) -> bool:
    """Whether apt can install ``package`` from the configured sources."""
    if not shutil.which("apt-cache"):
        return False
    out = subprocess.run(["apt-cache", "policy", package], capture_output=True, text=True).stdout
    return any(
        line.strip().startswith("Candidate:") and "(none)" not in line for line in out.splitlines()
    )


def apt_packages() -> list[str]:
    """The engine packages apt can install here (buildx only where the release has it)."""
    packages = [ENGINE_PACKAGE]
    if apt_has_candidate(BUILDX_PACKAGE):
        packages.append(BUILDX_PACKAGE)
    return packages


def buildx_available() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0
    )


def install_buildx_from_fallback_suite() -> None:
    """Fetch the buildx package from the next Debian release with a private sources list."""
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)  # apt's download user must be able to write here
        lists = os.path.join(tmp, "lists")
        os.makedirs(os.path.join(lists, "partial"))
        os.makedirs(os.path.join(tmp, "parts"))
        sources = os.path.join(tmp, "sources.list")
        with open(sources, "w") as f:
            f.write(BUILDX_FALLBACK_SUITE + "\n")
        opts = [
            "-o", f"Dir::Etc::sourcelist={sources}",
            "-o", f"Dir::Etc::sourceparts={tmp}/parts",
            "-o", f"Dir::State::Lists={lists}",
            "-o", "APT::Get::List-Cleanup=0",
        ]
        _run(["apt-get", *opts, "update", "-qq"])
        _run(["apt-get", *opts, "download", BUILDX_PACKAGE], cwd=tmp, capture_output=True)
        debs = [f for f in os.listdir(tmp) if f.endswith(".deb")]
        _run(["dpkg", "-i", *[os.path.join(tmp, d) for d in debs]], capture_output=True)


def install_engine() -> None:
    """Install docker.io and buildx when missing."""
    if not shutil.which("dockerd"):
        log.info("installing %s", " ".join(apt_packages()))
        _run(["apt-get", "update", "-qq"])
        _run(["apt-get", "install", "-y", "-qq", *apt_packages()])
    if not buildx_available():
        if apt_has_candidate(BUILDX_PACKAGE):
            _run(["apt-get", "install", "-y", "-qq", BUILDX_PACKAGE])
        else:
            log.info("installing %s from the next Debian release", BUILDX_PACKAGE)
            install_buildx_from_fallback_suite()


def engine_running() -> bool:
    return (
        shutil.which("docker") is not None
        and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )


def systemd_running() -> bool:
    return os.path.isdir("/run/systemd/system") and shutil.which("systemctl") is not None


def start_engine(timeout: float = 60) -> None:
    """Start dockerd: through systemd where it runs, else as a detached process."""
    if engine_running():
        return
    if systemd_running():
        _run(["systemctl", "enable", "--now", "docker"])
    else:
        log.info("starting dockerd (log: %s)", DOCKERD_LOG)
        with open(DOCKERD_LOG, "ab") as out:
            subprocess.Popen(["dockerd"], stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine_running():
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Docker engine did not start within {timeout:.0f}s; see {DOCKERD_LOG}")


def ensure_engine() -> None:
    install_engine()
    start_engine()
