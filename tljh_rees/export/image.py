"""A local Docker image as the export sees it: its configuration and its root filesystem
(pulled back from the registry first, in multi-node mode, when the engine lost it)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field

import docker.errors

from ..swarm.registry import RegistryUnavailable, by_digest, pull  # multi-node mode
from .errors import ExportError
from .progress import Progress
from .tools import raise_for_failure, require


@dataclass(frozen=True)
class ImageInfo:
    """What a SIF needs from ``docker image inspect``."""

    reference: str
    id: str
    architecture: str = "amd64"
    os: str = "linux"
    size: int = 0
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    labels: dict = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    repo_digests: tuple[str, ...] = ()

    @classmethod
    def from_inspect(cls, reference: str, data: dict) -> "ImageInfo":
        config = data.get("Config") or {}
        return cls(
            reference=reference,
            id=data["Id"],
            architecture=data.get("Architecture") or "amd64",
            os=data.get("Os") or "linux",
            size=int(data.get("Size") or 0),
            env=tuple(config.get("Env") or ()),
            entrypoint=tuple(config.get("Entrypoint") or ()),
            cmd=tuple(config.get("Cmd") or ()),
            working_dir=config.get("WorkingDir") or "",
            user=config.get("User") or "",
            labels=dict(config.get("Labels") or {}),
            exposed_ports=tuple(sorted(config.get("ExposedPorts") or {})),
            volumes=tuple(sorted(config.get("Volumes") or {})),
            stop_signal=config.get("StopSignal") or "",
            repo_digests=tuple(data.get("RepoDigests") or ()),
        )


def inspect_image(api: docker.APIClient, reference: str) -> ImageInfo:
    try:
        return ImageInfo.from_inspect(reference, api.inspect_image(reference))
    except docker.errors.ImageNotFound:
        raise ExportError(f"no Docker image named {reference!r} on this machine "
                          "(build it first, or check 'docker images')") from None
    except docker.errors.DockerException as e:
        raise ExportError(f"cannot inspect the image {reference!r}: {e}") from None


def export_rootfs(api: docker.APIClient, image: ImageInfo, dest: str,
                  progress: Progress) -> None:
    """Unpack the image's flattened filesystem into the empty directory ``dest``.

    A created (never started) container gives the flattened layers with whiteouts
    applied; GNU tar unpacks them (keeping owners when run as root).
    """
    tar = require("tar")
    progress.step(f"Exporting the filesystem of {image.reference}", total=image.size or None)
    try:
        container = api.create_container(image.id, command=["/.rees-export-placeholder"],
                                         labels={"org.tljh-rees.export": "rootfs"})["Id"]
    except docker.errors.DockerException as e:
        raise ExportError(f"cannot read the filesystem of {image.reference}: {e}") from None
    try:
        cmd = [tar, "-x", "-C", dest, "--numeric-owner"]
        if os.geteuid() != 0:
            cmd.append("--no-same-owner")  # unprivileged: files become ours, mksquashfs -all-root
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=errors)
            done = 0
            try:
                for chunk in api.export(container, chunk_size=1024 * 1024):
                    proc.stdin.write(chunk)
                    done += len(chunk)
                    progress.advance(done)
            except BrokenPipeError:
                pass  # tar stopped early: its message says why
            except docker.errors.DockerException as e:
                proc.kill()
                raise ExportError(f"exporting the filesystem of {image.reference} "
                                  f"failed: {e}") from None
            except BaseException:
                proc.kill()
                raise
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
                code = proc.wait()
            if code != 0:
                errors.seek(0)
                raise_for_failure("unpacking the image filesystem (tar)", code,
                                  errors.read().decode("utf-8", "replace"), dest)
        progress.advance(max(done, progress.total or 0))
    finally:
        try:
            api.remove_container(container, force=True)
        except docker.errors.DockerException:
            pass
    # Docker's marker of "inside a container" would mislead tools under Apptainer.
    marker = os.path.join(dest, ".dockerenv")
    if os.path.isfile(marker) and not os.path.islink(marker):
        os.remove(marker)


def pull_if_gone(api: docker.APIClient, image_id: str, tag: str, registry_ref: str,
                 auth_config: dict | None, progress: Progress) -> bool:
    """Multi-node mode: when the engine no longer has ``image_id`` (the disk garbage
    collector removed it) but the registry holds it as ``registry_ref`` (by digest), pull
    it back and tag it ``tag`` again. The pulled image must be ``image_id`` itself (an
    image's id is the digest of its configuration, which a push and pull keep), so the
    SIF is of the very image the catalog records. Returns whether it pulled."""
    try:
        api.inspect_image(image_id)
        return False
    except docker.errors.ImageNotFound:
        pass
    if not by_digest(registry_ref)[1]:
        return False  # not by digest: convert's own error names the missing image
    progress.step(f"This machine no longer has the image; pulling {registry_ref} from "
                  "the registry")
    try:
        pulled = pull(api, registry_ref, auth_config)
    except RegistryUnavailable as e:
        raise ExportError(str(e)) from None
    if pulled != image_id:
        raise ExportError(f"the registry's {registry_ref} is image {pulled[:19]}, not the "
                          f"environment's {image_id[:19]}; rebuild it")
    repository, _, version = tag.rpartition(":")
    api.tag(pulled, repository, version)
    return True
