"""Shared parts of the export tests: a tiny real image, a real registry, SIF inspection.

No tests here; the test modules import the fixtures. The tiny image is built by Docker
from the host's own ``dash`` and C library, so it needs no network and converts in seconds.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import requests

GREET = 'echo "greeting=$GREETING args=$*"\n'
TINY_DOCKERFILE = """FROM scratch
COPY . /
ENV GREETING="hello 'quoted' $world" PATH=/bin
ENTRYPOINT ["/bin/sh", "/greet.sh"]
CMD ["default arg"]
LABEL org.example.kind=tiny
"""


def _shell_files() -> list[str]:
    out = subprocess.run(["ldd", "/bin/dash"], capture_output=True, text=True,
                         check=True).stdout
    return [w for w in out.split() if w.startswith("/")]


def write_context(ctx: str, dockerfile: str, files: dict[str, bytes]) -> None:
    """A build context: ``files`` (executable, at their paths) and the ``Dockerfile``."""
    for name, data in files.items():
        path = os.path.join(ctx, name.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o755)
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)


def build_image(tag_prefix: str, dockerfile: str, files: dict[str, bytes]) -> str:
    """``docker build`` a context of ``files`` + ``Dockerfile``; tag by content."""
    digest = hashlib.sha256(dockerfile.encode())
    for name in sorted(files):
        digest.update(name.encode() + files[name])
    tag = f"{tag_prefix}:{digest.hexdigest()[:12]}"
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory() as ctx:
        write_context(ctx, dockerfile, files)
        subprocess.run(["docker", "build", "-q", "-t", tag, ctx], check=True,
                       capture_output=True)
    return tag


def tiny_image_files() -> dict[str, bytes]:
    files = {"/bin/sh": open("/bin/dash", "rb").read(), "/greet.sh": GREET.encode()}
    for lib in _shell_files():
        files[lib] = open(os.path.realpath(lib), "rb").read()
    return files


def image_id(tag: str) -> str:
    return subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag],
                          capture_output=True, text=True, check=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    """Debian's docker-registry on 127.0.0.1 with its own storage and config."""

    def __init__(self, directory: str, htpasswd: str | None = None):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        config = os.path.join(directory, "config.yml")
        auth = ""
        if htpasswd:
            path = os.path.join(directory, "htpasswd")
            with open(path, "w") as f:
                f.write(htpasswd)
            auth = f"auth:\n  htpasswd:\n    realm: rees-test\n    path: {path}\n"
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {directory}/data\n"
                    f"  delete:\n    enabled: true\n"
                    f"http:\n  addr: {self.host}\n  secret: rees-test-secret\n{auth}")
        self.log = open(os.path.join(directory, "registry.log"), "wb")
        self.proc = subprocess.Popen([shutil.which("docker-registry"), "serve", config],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"http://{self.host}/v2/", timeout=2)
                break
            except requests.ConnectionError:
                assert self.proc.poll() is None, "docker-registry exited"
                assert time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.1)

    def manifest(self, path: str, tag: str, auth=None) -> requests.Response:
        return requests.get(
            f"http://{self.host}/v2/{path}/manifests/{tag}", auth=auth, timeout=30,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                               "application/vnd.docker.distribution.manifest.v2+json"})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def pull_sif(registry_host: str, path: str, tag: str, outdir: str) -> str:
    """Pull an oras:// SIF back with oras-py (what ``apptainer pull oras://`` fetches)."""
    import oras.provider

    client = oras.provider.Registry(hostname=registry_host, insecure=True)
    files = client.pull(target=f"{registry_host}/{path}:{tag}", outdir=outdir)
    assert len(files) == 1, files
    return files[0]


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def siftool(*args: str) -> str:
    return subprocess.run(["siftool", *args], capture_output=True, text=True,
                          check=True).stdout


def sif_objects(path: str) -> list[dict]:
    """``siftool list`` rows as dicts: id, group, link, start, end, type."""
    rows = []
    for line in siftool("list", path).splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            start, end = cells[3].split("-")
            rows.append({"id": int(cells[0]), "group": cells[1], "link": cells[2],
                         "start": int(start), "end": int(end), "type": cells[4]})
    return rows


def sif_header(path: str) -> dict:
    fields = {}
    for line in siftool("header", path).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def sif_object_name(path: str, object_id: int) -> str:
    for line in siftool("info", str(object_id), path).splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Name":
            return value.strip()
    return ""


def run_in_charliecloud(partition: str, *command: str) -> subprocess.CompletedProcess:
    """Run ``command`` in a squashfs image with charliecloud's ch-run."""
    env = dict(os.environ, USER=pwd.getpwuid(os.getuid()).pw_name)
    return subprocess.run(["ch-run", "--no-passwd", partition, "--", *command],
                          capture_output=True, text=True, env=env, timeout=120)
