"""Local images of add-on services, made from the base image's Debian root filesystem.

No registry is needed: the image starts ``FROM`` the ``debootstrap`` root filesystem
``engine/baseimage.py`` makes (made here too if missing), trusts the same CA bundle and
installs the kind's Debian packages. The tag is a hash of everything that goes in, like
``tljh-rees/service-postgres:15-<hash12>``: a changed recipe, package list, start script
or CA bundle makes a new image; an unchanged one is reused at once.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

from ..engine.baseimage import (
    CA_ENV_NAMES,
    CA_PATH_IN_IMAGE,
    BaseImageError,
    BaseImageRecipe,
    Progress,
    _exists,
    _make_rootfs,
    build_from_context,
)
from ..engine.docker import client
from .kinds import START_SCRIPT, ServiceKind

RECIPE_VERSION = "2"
SERVICE_LABEL = "org.tljh-rees.service"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class ServiceImageRecipe:
    """The image of one kind at one version. ``rootfs_tag`` '' means the base image's
    root filesystem for ``suite`` and ``mirror``."""

    kind: ServiceKind
    version: str
    rootfs_tag: str = ""
    ca_bundle: str = ""
    mirror: str = DEFAULT_MIRROR
    suite: str = "bookworm"

    def base(self) -> BaseImageRecipe:
        return BaseImageRecipe(suite=self.suite, mirror=self.mirror, ca_bundle=self.ca_bundle)

    def rootfs(self) -> str:
        return self.rootfs_tag or self.base().rootfs_tag()

    def _ca_bytes(self) -> bytes:
        return self.base()._ca_bytes()

    def start_script(self) -> str:
        return self.kind.start_script(self.version)

    def tag(self) -> str:
        h = hashlib.sha256()
        for part in (RECIPE_VERSION, self.kind.name, self.version,
                     repr(self.kind.packages(self.version)), self.dockerfile(),
                     self.start_script()):
            h.update(part.encode() + b"\0")
        h.update(self._ca_bytes())
        return f"tljh-rees/service-{self.kind.name}:{self.version}-{h.hexdigest()[:12]}"

    def dockerfile(self) -> str:
        kind, version = self.kind, self.version
        lines = [f"FROM {self.rootfs()}"]
        if self.ca_bundle:
            lines.append(f"COPY ca-certificates.crt {CA_PATH_IN_IMAGE}")
            lines.append("ENV " + " ".join(f"{n}={CA_PATH_IN_IMAGE}" for n in CA_ENV_NAMES))
        install = [
            # no daemon starts during the build (there is no init to start it)
            "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d",
            "chmod 755 /usr/sbin/policy-rc.d",
            # the service user first, with a fixed id (the package keeps an existing one)
            f"groupadd --system --gid {kind.uid} {kind.user}",
            f"useradd --system --uid {kind.uid} --gid {kind.uid} --no-create-home "
            f"--home-dir {kind.home} --shell /bin/sh {kind.user}",
            "apt-get update -qq",
            "apt-get install -y -qq --no-install-recommends "
            + " ".join(kind.packages(version)),
            *kind.build_steps(version),
            "rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d",
        ]
        owned = f"{kind.user}:{kind.user}"
        lines += [
            "ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive",
            "RUN " + " && ".join(install),
            f"RUN {kind.verify_command(version)}",
            f"COPY rees-service-start {START_SCRIPT}",
            f"RUN chmod 755 {START_SCRIPT} && mkdir -p {kind.data_dir} {kind.run_dir} && "
            f"chown {owned} {kind.data_dir} {kind.run_dir} && "
            f"chmod 700 {kind.data_dir} {kind.run_dir}",
            f"USER {kind.user}",
            f"EXPOSE {kind.port}",
            f"STOPSIGNAL {kind.stop_signal}",
            f"LABEL {SERVICE_LABEL}={kind.name} {SERVICE_LABEL}-version={version}",
        ]
        return "\n".join(lines) + "\n"

    def context(self) -> io.BytesIO:
        """The build context: the Dockerfile, the start script and the CA bundle."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data, mode in (("Dockerfile", self.dockerfile().encode(), 0o644),
                                     ("rees-service-start", self.start_script().encode(), 0o755),
                                     ("ca-certificates.crt", self._ca_bytes(), 0o644)):
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        return buf


def ensure_service_image(recipe: ServiceImageRecipe, progress: Progress = print) -> str:
    """The tag of ``recipe``'s image, building it (and the root filesystem) if missing."""
    docker_client = client(timeout=600)
    tag = recipe.tag()
    if _exists(docker_client, tag):
        return tag
    if not _exists(docker_client, recipe.rootfs()):
        if recipe.rootfs_tag and recipe.rootfs_tag != recipe.base().rootfs_tag():
            raise BaseImageError(f"the root filesystem image {recipe.rootfs_tag} is missing")
        _make_rootfs(recipe.base(), progress)
    packages = " ".join(recipe.kind.packages(recipe.version))
    progress(f"building {tag} ({packages} from {recipe.mirror})")
    return build_from_context(docker_client, recipe.context(), tag, progress)


def service_recipes(catalog, ca_bundle: str = "", mirror: str = DEFAULT_MIRROR) \
        -> list[ServiceImageRecipe]:
    """One recipe per service ``catalog`` (a ServiceCatalog) offers, at its version."""
    return [ServiceImageRecipe(catalog.kind(name), versions[0], ca_bundle=ca_bundle,
                               mirror=mirror)
            for name, versions in catalog.offered().items()]
