"""Garbage collection of the registry in multi-node mode.

Every build is pushed as ``rees/rees-<env>:<version>``; once an environment is rebuilt or
deleted, its older manifests only take space. This removes them through the registry's
HTTP API (``DELETE /v2/<name>/manifests/<digest>``), keeping every environment's current
``registry_ref``, anything of an environment whose build is under way, and any image the
service did not build (no ``org.tljh-rees.build_id`` label in its config). For the
registry this project runs it then frees the blobs nothing refers to any more with
Debian's ``docker-registry garbage-collect`` and measures its storage folder before and
after; an admin's registry gets only the manifest deletes (its blob collection is its
admin's).

Blob collection must never run during a push: the layers of a push whose manifest is
not there yet look unused. Every push holds the registry's lock shared
(``registry.push``), this round holds it exclusively (without waiting: a round that finds
a push under way leaves the registry for the next one), and reads the catalog only once
it holds the lock, so a push that finished is either recorded or still an active build.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Iterable

import requests
import yaml
from sqlalchemy import select
from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from ..engine.images import BUILT_BY_LABEL
from ..store.models import Build, Environment
from .registry import REPOSITORY_PREFIX, USER, Registry, by_digest, registry_lock

log = logging.getLogger("tljh_rees.gc")

MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json"])
_BEARER = re.compile(r'(\w+)="([^"]*)"')
_BLOB = re.compile(r"blob eligible for deletion", re.IGNORECASE)


class RegistryError(RuntimeError):
    """The registry refused or did not answer; the message says which and why."""


@dataclass(frozen=True)
class Manifest:
    repository: str  # rees/rees-<env>
    digest: str
    tags: tuple[str, ...]
    built_here: bool = True  # its image has the label of the service's builds


@dataclass(frozen=True)
class Doomed:
    manifest: Manifest
    reason: str


def split_ref(ref: str, address: str) -> tuple[str, str] | None:
    """(repository, digest) of ``host:port/repo:tag@sha256:…`` in the registry at
    ``address``; None for a reference elsewhere or without a digest."""
    name, digest = by_digest(ref)
    if not digest or not name.startswith(address + "/"):
        return None
    return name[len(address) + 1:], digest


def plan(manifests: Iterable[Manifest], keep: set[tuple[str, str]],
         environments: set[str], building: set[str], image_prefix: str = "rees-") \
        -> tuple[list[Doomed], list[str]]:
    """Which manifests go and why, and why others stay. ``keep``: (repository, digest)
    of current images; ``environments``: names that exist; ``building``: names with a
    build under way (their newest push may not be recorded yet). Only repositories of
    environments (``rees/<image_prefix>…``) are touched, and only images the service
    built (an admin's plain image pushed for a template may have such a name too)."""
    doomed, kept = [], []
    prefix = REPOSITORY_PREFIX + image_prefix
    for m in manifests:
        if not m.repository.startswith(prefix):
            continue
        name = m.repository[len(REPOSITORY_PREFIX + "rees-"):]  # rees-<env> locally
        label = f"{m.repository}@{m.digest[:19]}"
        if (m.repository, m.digest) in keep:
            continue
        if not m.built_here:
            kept.append(f"registry {label}: not built by this service (no {BUILT_BY_LABEL} "
                        "label)")
            continue
        if name in building:
            kept.append(f"registry {label}: a build of {name} is under way")
            continue
        reason = (f"an old build of {name} (no longer its image)" if name in environments
                  else "its environment was deleted")
        doomed.append(Doomed(m, reason))
    return doomed, kept


def folder_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class RegistryAPI:
    """The few calls of the registry's HTTP API (v2) this needs, with basic or token
    authentication. Credentials go in headers only."""

    def __init__(self, registry: Registry, ca_file: str = "", timeout: float = 30):
        self.registry = registry
        self.base = f"https://{registry.address}/v2/"
        self.session = requests.Session()
        # per request, not session.verify: REQUESTS_CA_BUNDLE would override that
        self.verify = ca_file or True
        if registry.username:
            self.session.auth = (registry.username, registry.password)
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("https://") else self.base + path
        try:
            r = self.session.request(method, url, timeout=self.timeout, verify=self.verify,
                                     **kwargs)
            if r.status_code == 401 and "bearer" in r.headers.get(
                    "WWW-Authenticate", "").lower():
                token = self._token(r.headers["WWW-Authenticate"])
                headers = {**kwargs.pop("headers", {}), "Authorization": f"Bearer {token}"}
                r = requests.request(method, url, timeout=self.timeout, headers=headers,
                                     verify=self.verify, **kwargs)
        except requests.RequestException as e:
            raise RegistryError(f"the registry {self.registry.address} did not answer: "
                                f"{type(e).__name__}: {str(e)[:300]}") from None
        return r

    def _token(self, challenge: str) -> str:
        fields = dict(_BEARER.findall(challenge))
        params = {k: v for k, v in fields.items() if k in ("service", "scope")}
        r = self.session.get(fields.get("realm", ""), params=params, timeout=self.timeout,
                             verify=self.verify)
        if r.status_code != 200:
            raise RegistryError(f"the registry {self.registry.address} refused a token "
                                f"(HTTP {r.status_code})")
        return r.json().get("token") or r.json().get("access_token", "")

    def _checked(self, r: requests.Response, what: str) -> requests.Response:
        if r.status_code >= 400:
            raise RegistryError(f"the registry {self.registry.address} refused to {what} "
                                f"(HTTP {r.status_code}: {r.text.strip()[:200]})")
        return r

    def _pages(self, path: str, key: str) -> list[str]:
        found: list[str] = []
        url = path
        while url:
            r = self._checked(self._call("GET", url), f"list {path}")
            found += r.json().get(key) or []
            link = r.links.get("next", {}).get("url", "")
            url = f"https://{self.registry.address}{link}" if link.startswith("/") else link
        return found

    def repositories(self) -> list[str]:
        return self._pages("_catalog?n=1000", "repositories")

    def manifests(self, repository: str) -> list[Manifest]:
        """The repository's manifests that have a tag, each once with all its tags, and
        whether the service built their image (the label in the image's config)."""
        r = self._call("GET", f"{repository}/tags/list")
        if r.status_code == 404:  # every tag was deleted
            return []
        tags = self._checked(r, f"list the tags of {repository}").json().get("tags") or []
        by_digest: dict[str, list[str]] = {}
        built: dict[str, bool] = {}
        for tag in tags:
            got = self._checked(self._call("GET", f"{repository}/manifests/{tag}",
                                           headers={"Accept": MANIFEST_TYPES}),
                                f"show {repository}:{tag}")
            digest = got.headers.get("Docker-Content-Digest", "")
            if not digest:
                continue
            by_digest.setdefault(digest, []).append(tag)
            if digest not in built:
                built[digest] = self._built_here(repository, got.json())
        return [Manifest(repository, d, tuple(t), built[d]) for d, t in by_digest.items()]

    def _built_here(self, repository: str, manifest: dict) -> bool:
        config = (manifest.get("config") or {}).get("digest")
        if not config:  # a list of images for several platforms: not one of ours
            return False
        blob = self._checked(self._call("GET", f"{repository}/blobs/{config}"),
                             f"read the image config of {repository}")
        labels = (blob.json().get("config") or {}).get("Labels") or {}
        return BUILT_BY_LABEL in labels

    def delete(self, manifest: Manifest) -> None:
        r = self._call("DELETE", f"{manifest.repository}/manifests/{manifest.digest}")
        if r.status_code == 405:
            raise RegistryError(f"the registry {self.registry.address} does not allow "
                                "deletes (its config needs storage: delete: enabled: true)")
        if r.status_code != 404:  # gone already is fine
            self._checked(r, f"delete {manifest.repository}@{manifest.digest}")


class RegistryCollector(LoggingConfigurable):
    """One round of the registry's collection, called by operations/gc.py."""

    ca_file = Unicode("", config=True,
                      help="The CA the registry's certificate is signed by ('' for the "
                           "system's CAs).")
    config_file = Unicode(
        "", config=True,
        help="The config of the registry this project runs (its blobs are collected with "
             "docker-registry garbage-collect); '' for an admin's registry.")
    command = Unicode("docker-registry", config=True, help="Debian's registry command.")
    timeout = Integer(1800, config=True,
                      help="Seconds docker-registry garbage-collect may take.")

    def __init__(self, registry: Registry, **kwargs):
        super().__init__(**kwargs)
        self.registry = registry
        self.lock_dir = ""  # tests: a lock folder of their own

    def storage(self) -> str:
        """The storage folder of the registry this project runs ('' for an admin's)."""
        if not self.config_file:
            return ""
        with open(self.config_file) as f:
            config = yaml.safe_load(f) or {}
        return ((config.get("storage") or {}).get("filesystem") or {}).get(
            "rootdirectory", "")

    def collect(self, report, catalog, image_prefix: str = "rees-") -> None:
        """Delete (or, in a dry run, list) the manifests that may go, then collect blobs;
        ``report`` is operations/gc.py's Report."""
        from ..operations.gc import Removal

        address = self.registry.address
        with registry_lock(address, exclusive=not report.dry_run,
                           folder=self.lock_dir) as held:
            if not held:
                report.kept.append(f"registry {address}: a push is under way; collected "
                                   "in a later round")
                return
            keep, environments, building = self._catalog_view(catalog, address)
            api = RegistryAPI(self.registry, self.ca_file)
            try:
                manifests = [m for repo in api.repositories()
                             if repo.startswith(REPOSITORY_PREFIX + image_prefix)
                             for m in api.manifests(repo)]
                doomed, kept = plan(manifests, keep, environments, building, image_prefix)
                report.kept += kept
                deleted = 0
                for d in doomed:
                    if not report.dry_run:
                        api.delete(d.manifest)
                    deleted += 1
                    report.removals.append(Removal(
                        "registry-manifest", f"{address}/{d.manifest.repository}@"
                        f"{d.manifest.digest} ({', '.join(d.manifest.tags)})", d.reason, 0))
            except RegistryError as e:
                report.kept.append(f"registry {address}: {e}")
                return
            if self.config_file:
                self._collect_blobs(report, deleted)

    @staticmethod
    def _catalog_view(catalog, address: str) -> tuple[set[tuple[str, str]], set[str],
                                                      set[str]]:
        """(current images as (repository, digest), environments, those being built)."""
        with catalog.session() as db:
            envs = db.execute(select(Environment.name, Environment.registry_ref)).all()
            building = set(db.scalars(select(Build.environment).where(
                Build.status.in_(Build.ACTIVE))).all())
        keep = {split_ref(ref, address) for _, ref in envs if ref}
        return keep - {None}, {name for name, _ in envs}, building

    def _collect_blobs(self, report, deleted: int) -> None:
        from ..operations.gc import Removal

        what = f"{self.command} garbage-collect {self.config_file}"
        if report.dry_run:
            if deleted:
                report.removals.append(Removal(
                    "registry-blobs", what, f"after deleting {deleted} manifests", 0))
            return
        folder = self.storage()
        before = folder_size(folder) if folder else 0
        try:
            out = subprocess.run([self.command, "garbage-collect", self.config_file],
                                 capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            report.kept.append(f"registry blobs: {what} failed: {e}")
            return
        if out.returncode != 0:
            report.kept.append(f"registry blobs: {what} failed: "
                               f"{(out.stderr or out.stdout).strip()[-300:]}")
            return
        blobs = len(_BLOB.findall(out.stdout + out.stderr))
        freed = max(0, before - folder_size(folder)) if folder else 0
        if blobs or freed:
            report.removals.append(Removal("registry-blobs", what,
                                           f"{blobs} blobs no manifest refers to", freed))


def collector_for(swarm, state_dir: str, **kwargs) -> RegistryCollector:
    """``tljh-rees gc``'s collector for the ``rees.swarm`` settings ``swarm``: the admin's
    registry, or the one this project runs from the files the Hub made under
    ``state_dir`` (read, never made here: OSError when the Hub never ran in this mode)."""
    if swarm.registry:
        return RegistryCollector(Registry(swarm.registry, swarm.registry_username,
                                          swarm.registry_password), **kwargs)
    folder = os.path.join(state_dir, "swarm", "registry")
    config_file = os.path.join(folder, "config.yml")
    with open(config_file) as f:
        host, _, port = (yaml.safe_load(f) or {})["http"]["addr"].rpartition(":")
    with open(os.path.join(folder, "password")) as f:
        password = f.read().strip()
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    ca_file = os.path.join(folder, "tls", "ca.crt")
    return RegistryCollector(Registry(address, USER, password, ca_file), ca_file=ca_file,
                             config_file=config_file, **kwargs)
