"""A local base image with ``jupyterhub-singleuser``, for machines without a registry.

Built from a Debian root filesystem made by ``debootstrap`` (no registry needed), then
a virtual environment with JupyterHub, Jupyter Server and JupyterLab from PyPI. The tag
is a hash of everything that goes in, so a changed recipe or CA bundle makes a new
image and an unchanged one is reused at once.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from typing import Callable

from docker.errors import ImageNotFound

from .docker import client

RECIPE_VERSION = "1"
SINGLEUSER_PACKAGES = ("jupyterhub>=5.2,<7", "jupyter_server>=2.10,<3", "jupyterlab>=4,<5")
# What repo2docker's build-pack templates use from a buildpack-deps base.
REPO2DOCKER_PACKAGES = ("curl", "wget", "bzip2", "unzip", "xz-utils", "gnupg", "less",
                        "procps", "gettext-base")
ROOTFS_PACKAGES = ("python3", "python3-venv", "ca-certificates", "git", "locales")
CA_PATH_IN_IMAGE = "/usr/local/share/tljh-rees/ca-certificates.crt"
# Every common client's variable for "trust this bundle".
CA_ENV_NAMES = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
                "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS")

Progress = Callable[[str], None]


class BaseImageError(RuntimeError):
    pass


@dataclass(frozen=True)
class BaseImageRecipe:
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    ca_bundle: str = ""
    user_name: str = "jovyan"
    user_id: int = 1000
    # repo2docker's build packs want a root base without their user, like buildpack-deps
    for_repo2docker: bool = False

    def _ca_bytes(self) -> bytes:
        if not self.ca_bundle:
            return b""
        with open(self.ca_bundle, "rb") as f:
            return f.read()

    def rootfs_tag(self) -> str:
        key = hashlib.sha256(f"{self.suite}|{self.mirror}|{ROOTFS_PACKAGES}".encode()).hexdigest()
        return f"tljh-rees/rootfs:{self.suite}-{key[:12]}"

    def tag(self) -> str:
        h = hashlib.sha256()
        for part in (RECIPE_VERSION, self.rootfs_tag(), repr(SINGLEUSER_PACKAGES),
                     self.user_name, str(self.user_id)):
            h.update(part.encode() + b"\0")
        h.update(self._ca_bytes())
        if self.for_repo2docker:
            h.update(repr(REPO2DOCKER_PACKAGES).encode())
            return f"tljh-rees/r2d-base:{h.hexdigest()[:12]}"
        return f"tljh-rees/base:{h.hexdigest()[:12]}"

    def dockerfile(self) -> str:
        lines = [f"FROM {self.rootfs_tag()}"]
        if self.ca_bundle:
            lines.append(f"COPY ca-certificates.crt {CA_PATH_IN_IMAGE}")
            lines.append("ENV " + " ".join(f"{n}={CA_PATH_IN_IMAGE}" for n in CA_ENV_NAMES))
        if self.for_repo2docker:
            return "\n".join(lines + [
                "ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive",
                "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                f"{' '.join(REPO2DOCKER_PACKAGES)} && rm -rf /var/lib/apt/lists/*",
                f'LABEL org.tljh-rees.base-image="{self.tag()}"',
            ]) + "\n"
        packages = " ".join(f"'{p}'" for p in SINGLEUSER_PACKAGES)
        lines += [
            "ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 PATH=/opt/jupyter/bin:$PATH",
            "RUN python3 -m venv /opt/jupyter && "
            f"/opt/jupyter/bin/pip install --no-cache-dir --progress-bar off {packages}",
            f"RUN useradd --create-home --uid {self.user_id} --shell /bin/bash {self.user_name}",
            f"USER {self.user_name}",
            f"ENV HOME=/home/{self.user_name}",
            f"WORKDIR /home/{self.user_name}",
            "EXPOSE 8888",
            'CMD ["jupyterhub-singleuser"]',
            f'LABEL org.tljh-rees.base-image="{self.tag()}"',
        ]
        return "\n".join(lines) + "\n"

    def context(self) -> io.BytesIO:
        """The build context: the Dockerfile and, if any, the CA bundle."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("Dockerfile", self.dockerfile().encode()),
                               ("ca-certificates.crt", self._ca_bytes())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        return buf


def _exists(docker_client, tag: str) -> bool:
    try:
        docker_client.images.get(tag)
        return True
    except ImageNotFound:
        return False


def _make_rootfs(recipe: BaseImageRecipe, progress: Progress) -> None:
    if not shutil.which("debootstrap"):
        raise BaseImageError("debootstrap is not installed (Debian/Ubuntu package: debootstrap)")
    with tempfile.TemporaryDirectory(prefix="tljh-rees-rootfs-") as root:
        progress(f"debootstrap {recipe.suite} from {recipe.mirror} (about a minute)")
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
               recipe.suite, root, recipe.mirror]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        tail = []
        for line in proc.stdout:
            tail = (tail + [line.rstrip()])[-20:]
            if line.startswith("I: Retrieving") or line.startswith("I: Configuring"):
                progress(line.strip())
        if proc.wait() != 0:
            raise BaseImageError("debootstrap failed:\n" + "\n".join(tail))
        progress(f"importing the root filesystem as {recipe.rootfs_tag()}")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(["docker", "import", "-", recipe.rootfs_tag()],
                                  stdin=tar.stdout, capture_output=True, text=True)
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise BaseImageError(f"docker import failed: {imported.stderr.strip()}")


def ensure_base_image(recipe: BaseImageRecipe, progress: Progress = print) -> str:
    """Return the tag of the base image for ``recipe``, building it if it is missing."""
    docker_client = client(timeout=600)
    tag = recipe.tag()
    if _exists(docker_client, tag):
        return tag
    if not _exists(docker_client, recipe.rootfs_tag()):
        _make_rootfs(recipe, progress)
    progress(f"building {tag} (JupyterHub, Jupyter Server, JupyterLab from PyPI)")
    return build_from_context(docker_client, recipe.context(), tag, progress)


def build_from_context(docker_client, context, tag: str, progress: Progress) -> str:
    """Build ``tag`` from a tar ``context`` with a Dockerfile, reporting its steps."""
    stream = docker_client.api.build(fileobj=context, custom_context=True, tag=tag,
                                     rm=True, forcerm=True, decode=True)
    for chunk in stream:
        if "error" in chunk:
            raise BaseImageError(f"building {tag} failed: {chunk['error'].strip()}")
        text = chunk.get("stream", "").strip()
        if text.startswith("Step ") or text.startswith("Successfully"):
            progress(text)
    return tag


def default_ca_bundle() -> str:
    """The host's CA bundle, where it has one (for sites whose TLS goes through a proxy)."""
    path = "/etc/ssl/certs/ca-certificates.crt"
    return path if os.path.isfile(path) else ""
