"""Push a SIF as an ORAS artifact, or a Docker image as OCI, to a registry.

The SIF artifact is what ``apptainer push … oras://`` makes, so ``apptainer pull
oras://…`` takes it: an OCI manifest whose config is ``{}`` with Sylabs' SIF config media
type and whose one layer is the SIF file. Large files go up in chunks (POST, PATCH…, PUT).
"""

from __future__ import annotations

import hashlib
import json
import os

import oras.container
import oras.defaults
import oras.provider
import oras.utils
import requests

from .credentials import auth_file, docker_config_path, login_from_env
from .errors import ExportError, RegistryError
from .progress import Progress
from .targets import PushTarget
from .tools import require, run

SIF_CONFIG_MEDIA_TYPE = "application/vnd.sylabs.sif.config.v1+json"
SIF_LAYER_MEDIA_TYPE = "application/vnd.sylabs.sif.layer.v1.sif"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_CONFIG = b"{}"
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024


def sha256_file(path: str, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress.advance(done)
    return "sha256:" + digest.hexdigest()


def registry_errors(response: requests.Response) -> str:
    """The registry's own words about a refusal (OCI error JSON), else the status line."""
    try:
        errors = response.json().get("errors") or []
        words = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ")
                          for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        words = ""
    return f"{response.status_code} {response.reason}" + (f" ({words})" if words else "")


class _Registry(oras.provider.Registry):
    """oras-py's registry client with progress on chunked uploads and clear refusals."""

    def __init__(self, target: PushTarget, progress: Progress, chunk_size: int, **kwargs):
        super().__init__(hostname=target.registry, insecure=target.plain_http, **kwargs)
        self.progress = progress
        self.chunk_size = chunk_size

    def _check_200_response(self, response: requests.Response):
        if response.status_code not in (200, 201, 202):
            raise RegistryError(f"the registry refused {response.request.method} "
                                f"{response.request.url.split('?')[0]}: "
                                f"{registry_errors(response)}")

    def chunked_upload(self, blob, container, layer, chunk_size=None):
        start = self.do_request(f"{self.prefix}://{container.upload_blob_url()}", "POST",
                                headers={"Content-Length": "0", **self.headers})
        self._check_200_response(start)
        session = self._get_location(start, container)
        if not session:
            raise RegistryError("the registry started an upload without a location")
        done = 0
        with open(blob, "rb") as f:
            while chunk := f.read(chunk_size or self.chunk_size):
                headers = {"Content-Type": "application/octet-stream",
                           "Content-Length": str(len(chunk)),
                           "Content-Range": f"{done}-{done + len(chunk) - 1}", **self.headers}
                response = self.do_request(session, "PATCH", data=chunk, headers=headers)
                self._check_200_response(response)
                session = self._get_location(response, container) or session
                done += len(chunk)
                self.progress.advance(done)
        close = oras.utils.append_url_params(session, {"digest": layer["digest"]})
        return self.do_request(close, "PUT", headers={"Content-Length": "0", **self.headers})


def _auth_backend(target: PushTarget) -> str:
    """'basic' or 'token', as the registry's challenge at /v2/ asks."""
    scheme = "http" if target.plain_http else "https"
    try:
        response = requests.get(f"{scheme}://{target.registry}/v2/", timeout=30)
    except requests.RequestException as e:
        raise RegistryError(f"cannot reach the registry {target.registry}: {e}") from None
    challenge = response.headers.get("Www-Authenticate", "")
    return "basic" if challenge.lower().startswith("basic") else "token"


def push_sif(sif: str, target: PushTarget, progress: Progress,
             chunk_size: int = DEFAULT_CHUNK_SIZE) -> str:
    """Push ``sif`` to ``oras://…``; returns the manifest digest."""
    if target.transport != "oras":
        raise ExportError(f"a SIF goes to an oras:// target, not {target}")
    backend = _auth_backend(target)
    registry = _Registry(target, progress, chunk_size, auth_backend=backend)
    container = oras.container.Container(f"{target.registry}/{target.path}:{target.tag}")
    login = login_from_env()
    if login:
        registry.auth.set_basic_auth(login.username, login.password)
    else:
        config = docker_config_path()
        registry.auth.load_configs(container, configs=[config] if os.path.exists(config)
                                   else None)
    if backend == "basic" and not getattr(registry.auth, "_basic_auth", None):
        raise RegistryError(f"the registry {target.registry} asks for a login: set "
                            "REES_REGISTRY_USERNAME and REES_REGISTRY_PASSWORD, or run "
                            f"'docker login {target.registry}'")
    size = os.path.getsize(sif)
    progress.step(f"Checksumming {os.path.basename(sif)}", total=size)
    layer = {"mediaType": SIF_LAYER_MEDIA_TYPE, "digest": sha256_file(sif, progress),
             "size": size,
             "annotations": {oras.defaults.annotation_title: os.path.basename(sif)}}
    config = {"mediaType": SIF_CONFIG_MEDIA_TYPE,
              "digest": "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest(),
              "size": len(EMPTY_CONFIG)}
    try:
        progress.step(f"Uploading the SIF to {target}", total=size)
        if registry.blob_exists(layer, container):
            progress.note("the registry has this SIF already")
        else:
            registry._check_200_response(registry.chunked_upload(sif, container, layer))
        progress.advance(size)
        if not registry.blob_exists(config, container):
            _put_small_blob(registry, container, config, EMPTY_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST_MEDIA_TYPE,
                    "config": config, "layers": [layer]}
        response = registry.do_request(
            f"{registry.prefix}://{container.manifest_url()}", "PUT",
            headers={"Content-Type": OCI_MANIFEST_MEDIA_TYPE},
            data=json.dumps(manifest).encode())
        registry._check_200_response(response)
    except requests.RequestException as e:
        raise RegistryError(f"the upload to {target.registry} failed: {e}") from None
    except ValueError as e:  # oras-py's way of saying it could not authenticate
        raise RegistryError(f"the registry {target.registry} refused the login: {e}") from None
    digest = response.headers.get("Docker-Content-Digest", "")
    progress.note(f"pushed {target}" + (f" ({digest})" if digest else ""))
    return digest


def _put_small_blob(registry: _Registry, container, descriptor: dict, data: bytes) -> None:
    start = registry.do_request(f"{registry.prefix}://{container.upload_blob_url()}", "POST",
                                headers={"Content-Length": "0"})
    registry._check_200_response(start)
    url = oras.utils.append_url_params(registry._get_location(start, container),
                                       {"digest": descriptor["digest"]})
    registry._check_200_response(registry.do_request(
        url, "PUT", data=data,
        headers={"Content-Type": "application/octet-stream",
                 "Content-Length": str(len(data))}))


def push_image(image: str, target: PushTarget, progress: Progress) -> None:
    """Push the local Docker image ``image`` to ``docker://…`` with skopeo (layers as-is,
    so the pulled image has the same id)."""
    if target.transport != "docker":
        raise ExportError(f"an OCI image goes to a docker:// target, not {target}")
    skopeo = require("skopeo")
    progress.step(f"Pushing the image {image} to {target}")
    cmd = [skopeo, "copy", "--retry-times", "2"]
    if target.plain_http:
        cmd.append("--dest-tls-verify=false")
    with auth_file(target.registry) as authfile:
        if authfile:
            cmd += ["--dest-authfile", authfile]
        cmd += [f"docker-daemon:{image}", f"docker://{target.reference}"]
        try:
            run(cmd, what=f"pushing {image} to {target} (skopeo)", writes=str(target),
                on_text=progress.note)
        except ExportError as e:
            raise RegistryError(str(e)) from None
