"""The JupyterLab extension on every node: its folder as an image, and a volume from it.

On one machine the extension is a folder of the Hub's machine mounted read-only into
servers (``ReesSpawner.lab_extension_path``). Other nodes do not have that folder, so in
multi-node mode it travels the way environments do: ``lab_image`` makes a small image of
the folder (on top of the project's helper image, which has ``chown``), named by a hash
of its files, and the spawner pushes it to the registry. The task that prepares a user's
volume on their home node runs that image with an empty volume named by the same hash
mounted at the extension's path, so the engine fills the volume from the image (Docker
copies an image's files into an empty named volume mounted over them). The server then
mounts that volume read-only. A new version of the extension is a new hash: a new image
and new volumes, never a half-updated one.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

from docker.errors import BuildError

from .. import LABEL_PREFIX

SKIP = {"__pycache__", "node_modules"}


def _files(folder: str) -> list[str]:
    """The extension's files, relative to ``folder``, in a stable order."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in SKIP)
        for name in sorted(names):
            if not name.endswith(".pyc"):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return found


def content_key(folder: str) -> str:
    """12 hex digits of a hash over the folder's file names, modes and contents."""
    h = hashlib.sha256()
    for path in _files(folder):
        full = os.path.join(folder, path)
        h.update(path.encode() + b"\0" + oct(os.stat(full).st_mode & 0o777).encode() + b"\0")
        with open(full, "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:12]


def volume_name(folder: str) -> str:
    return f"rees-lab-{content_key(folder)}"


def _context(folder: str, base: str, target: str) -> io.BytesIO:
    """A build context: the Dockerfile and the folder under ``ext/``."""
    buffer = io.BytesIO()
    dockerfile = (f"FROM {base}\nCOPY ext {target}/{os.path.basename(folder)}\n"
                  f"LABEL {LABEL_PREFIX}lab-extension={content_key(folder)}\n").encode()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for path in _files(folder):
            tar.add(os.path.join(folder, path), f"ext/{path}", recursive=False)
    buffer.seek(0)
    return buffer


def lab_image(api, folder: str, base: str, target: str) -> str:
    """The local image holding ``folder`` at ``target``/<its name>, built if missing."""
    tag = f"tljh-rees/lab-extension:{content_key(folder)}"
    if api.images(name=tag, quiet=True):
        return tag
    output = []
    for chunk in api.build(fileobj=_context(folder, base, target), custom_context=True,
                           tag=tag, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise BuildError(chunk["error"], output)
        output.append(chunk)
    return tag
