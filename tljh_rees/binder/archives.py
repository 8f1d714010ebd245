"""Archive providers: Binder links to records on Zenodo, Figshare, Dataverse, HydroShare
and CKAN, resolved to an immutable version and fetched as exactly that version.

Resolving follows BinderHub (the persistent spec, ``binder_ref_url`` and build slug it
forms), reading each archive's public API. DOIs go through the handle API of a DOI
resolver (``c.ArchiveProvider.doi_resolver_url``), as repo2docker does: it answers in
JSON without a visit to the archive's landing page (only Zenodo's concept DOIs need one:
its redirect names the latest record, which is what BinderHub relies on).

Fetching drives repo2docker's own content providers in this process, pointed at the
configured hosts, with guards around them that repo2docker does not have: every name an
archive gives is checked before anything is written (the archive is not trusted: ``../x``,
absolute paths and links in zips are refused), the bytes downloaded and unpacked are
capped, requests time out and reach only public addresses, and the version is read again
before and after the download, so that a build is of the version the link resolved to or
fails saying so. HydroShare is fetched by :class:`HydroShareProvider` itself:
repo2docker's provider hard-codes its hosts, downloads with no timeout or cap, and unpacks
into ``./temp`` of the process's working directory, which the service's threads share.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import shutil
import socket
import stat
import time
import urllib.parse
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

import requests
from repo2docker.contentproviders import CKAN, Dataverse, Figshare, Zenodo
from repo2docker.utils import deep_get
from traitlets import Bool, Float, Integer, List, Unicode

from ..builds.builder import BuildFailed
from ..builds.sources import Source
from ..errors import InputError, ReesError
from .providers import RepoProvider, Resolved

log = logging.getLogger(__name__)

USER_AGENT = "tljh-rees (BinderHub-compatible archive providers)"
DOI_REGEX = r"10\.\d+\/(.)+"  # BinderHub's validateRegex, shown in /api/repoproviders
DOI = re.compile(r"10\.\d+/[^\s]+")
DOI_PREFIXES = ("doi:", "https://doi.org/", "http://doi.org/", "https://dx.doi.org/",
                "http://dx.doi.org/")
METADATA_LIMIT = 32 * 1024**2  # an API answer larger than this is not metadata
MAX_FILES = 100_000
CHUNK = 64 * 1024
TEXT_TYPES = ("text/", "application/json")


class ArchiveUnreachable(ReesError):
    """The archive did not answer as its API does (down, an error page, not JSON)."""

    status = 502


class FetchFailed(BuildFailed):
    """A record could not be fetched as it was resolved; the message says why."""


class RecordChanged(FetchFailed):
    """The record is no longer the version the link resolved to."""


class RecordTooLarge(FetchFailed):
    """The record's files are more than this Hub downloads for a build."""


class UnsafeName(FetchFailed):
    """The archive named a file that would land outside the build's folder."""


@dataclass(frozen=True)
class Record:
    """One version of a record, as fetching it needs it."""

    version: str
    url: str  # the version's page; repo2docker's content provider detects it
    key: tuple = ()  # what the provider needs to read the version again


# -- HTTP ---------------------------------------------------------------------------------

class Http:
    """The requests of one resolve or fetch: a timeout on each, answers read up to a cap,
    optionally no private addresses (redirects included), errors naming the archive."""

    def __init__(self, archive: str, timeout: float, public_only: bool,
                 counted: Callable[[Iterator[bytes]], Iterator[bytes]] | None = None):
        self.archive = archive
        self.timeout = timeout
        self.public_only = public_only
        self.counted = counted
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.hooks["response"].append(self._check_redirect)

    def get(self, url: str, stream: bool = False, **kwargs) -> requests.Response:
        """The answer (any status); its body is read up to METADATA_LIMIT unless
        ``stream``, when reading it counts against the download cap."""
        self.check_address(url)
        kwargs.setdefault("timeout", self.timeout)
        try:
            resp = self.session.get(url, stream=True, **kwargs)
            if not stream:
                resp._content = read_capped(resp, url)  # what resp.json() and .text read
                resp._content_consumed = True
        except requests.RequestException as e:
            raise ArchiveUnreachable(f"{self.archive} could not be reached at {url}: {e}",
                                     field="spec") from None
        if stream and self.counted is not None:
            chunks = resp.iter_content
            # a fixed chunk size: iter_content(None) reads a whole body into memory
            resp.iter_content = lambda *a, **k: self.counted(chunks(CHUNK))
        return resp

    def json(self, url: str, missing: str, kind: type = dict):
        """The JSON object (or ``kind``) ``url`` answers; InputError (422) saying
        ``missing`` if the archive has no such thing (or does not show it)."""
        resp = self.get(url, headers={"Accept": "application/json"})
        self.check_found(resp, url, missing)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if not isinstance(answer, kind):
            raise ArchiveUnreachable(f"{self.archive} answered {url} with something that "
                                     f"is not a JSON {kind.__name__}", field="spec")
        return answer

    def landing(self, url: str, missing: str) -> str:
        """Where ``url`` ends up after its redirects (the body is not read)."""
        resp = self.get(url, stream=True)
        resp.close()
        self.check_found(resp, url, missing)
        return resp.url

    def check_found(self, resp: requests.Response, url: str, missing: str) -> None:
        if resp.status_code in (401, 403, 404, 410):
            raise InputError("spec", missing, status=422)
        if resp.status_code >= 400:
            raise ArchiveUnreachable(f"{self.archive} answered HTTP {resp.status_code} for "
                                     f"{url}", field="spec")

    def check_address(self, url: str) -> None:
        """Refuse hosts that resolve to loopback, private or link-local addresses (the
        Hub's own API, a cloud's metadata service): a hostile record may name them."""
        if not self.public_only:
            return
        host = urllib.parse.urlsplit(url).hostname or ""
        try:
            addresses = self.addresses(host)
        except (socket.gaierror, UnicodeError):
            return  # requests reports the name it cannot resolve
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise InputError("spec", f"{url} is on a private or local address "
                                         f"({address}); this Hub fetches archives only from "
                                         "public addresses (an admin can allow others: "
                                         "c.ArchiveProvider.public_addresses_only = False)",
                                 status=422)

    @staticmethod
    def addresses(host: str) -> set[str]:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}

    def _check_redirect(self, resp: requests.Response, **kwargs) -> None:
        if resp.is_redirect:
            self.check_address(urllib.parse.urljoin(resp.url, resp.headers["location"]))


def read_capped(resp: requests.Response, url: str) -> bytes:
    body = bytearray()
    for chunk in resp.iter_content(CHUNK):
        body += chunk
        if len(body) > METADATA_LIMIT:
            resp.close()
            raise ArchiveUnreachable(f"{url} answered with more than "
                                     f"{METADATA_LIMIT // 1024**2} MiB of metadata",
                                     field="spec")
    return bytes(body)


# -- writing a record's files ------------------------------------------------------------

def safe_parts(name) -> list[str]:
    """The path components of a file name an archive gave, or UnsafeName if it would
    leave the folder (absolute, ``..``), or is no name at all."""
    parts = [p for p in name.split("/") if p not in ("", ".")] if isinstance(name, str) else []
    if (not parts or name.startswith("/") or ".." in parts or "\\" in name
            or any(ord(c) < 32 for c in name)):
        raise UnsafeName(f"the record names a file {name!r}, which is absolute, goes up "
                         "with '..', or is no plain path inside the record's folder; "
                         "refusing to fetch the record")
    return parts


class Files:
    """What one fetch writes: files under ``dest`` only (never through a link), at most
    ``limit`` bytes downloaded or unpacked, stopping when told to."""

    def __init__(self, dest: str, limit: int, say: Callable[[str], None]):
        self.dest = os.path.realpath(dest)
        self.limit = limit
        self.say = say
        self.used = 0
        self.count = 0
        self.stopped = False

    def take(self, size: int) -> None:
        if self.stopped:
            raise FetchFailed("the fetch was stopped")
        self.used += size
        if self.used > self.limit:
            raise RecordTooLarge(f"the record's files are larger than {human(self.limit)}, "
                                 "the most this Hub downloads for one build (an admin can "
                                 "change c.ArchiveProvider.max_download_bytes)")

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.take(len(chunk))
            yield chunk

    def path_for(self, name: str, folder: bool = False) -> str:
        """Where ``name`` goes under ``dest``, its parent folders made; UnsafeName for a
        name that would leave ``dest`` or pass through a link or a file."""
        parts = safe_parts(name)
        path = self.dest
        for part in parts if folder else parts[:-1]:
            path = os.path.join(path, part)
            if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
                raise UnsafeName(f"the record names {name!r}, but {part!r} is already a "
                                 "file or a link there; refusing to fetch the record")
            if not os.path.lexists(path):
                os.mkdir(path)
        if folder:
            return path
        path = os.path.join(path, parts[-1])
        if os.path.islink(path) or os.path.isdir(path):
            raise UnsafeName(f"the record names the file {name!r} twice, or also as a "
                             "folder; refusing to fetch the record")
        return path

    def write(self, path: str, chunks: Iterable[bytes]) -> None:
        self.count += 1
        if self.count > MAX_FILES:
            raise RecordTooLarge(f"the record has more than {MAX_FILES} files")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(path, flags, 0o644), "wb") as f:
            for chunk in chunks:
                f.write(chunk)

    def temp_path(self) -> str:
        return os.path.join(self.dest, f".rees-download-{uuid.uuid4().hex}")

    def download(self, http: Http, url: str, name: str, unzip: bool = False) -> Iterator[str]:
        """Put ``url`` at ``name``; with ``unzip``, a zip is unpacked in its place (its
        one top folder, if it has one, becomes the record's folder), as repo2docker does
        for a record of one zip file. Yields lines for the log."""
        safe_parts(name)  # before anything is downloaded
        path = self.temp_path() if unzip else self.path_for(name)
        yield f"Downloading {name} from {url}\n"
        resp = http.get(url, stream=True)
        if resp.status_code >= 400:
            raise FetchFailed(f"{http.archive} answered HTTP {resp.status_code} for the "
                              f"file {name!r} ({url})")
        with resp:
            self.write(path, resp.iter_content())
        if unzip:
            if zipfile.is_zipfile(path):
                yield f"Unpacking {name}\n"
                self.unpack(path, flatten=True)
            else:
                os.rename(path, self.path_for(name))

    def unpack(self, zip_path: str, prefix: str = "", flatten: bool = False) -> int:
        """Unpack the members of a downloaded zip that are under ``prefix`` (without it)
        into ``dest``, then delete the zip; returns how many files it held."""
        try:
            with zipfile.ZipFile(zip_path) as z:
                members = self.members(z, prefix, flatten)
                self.used -= os.path.getsize(zip_path)  # deleted below: count its content
                for info, name in members:
                    if info.is_dir():
                        self.path_for(name, folder=True)
                        continue
                    path = self.path_for(name)
                    with z.open(info) as src:
                        self.write(path, self.counted(iter(lambda: src.read(CHUNK), b"")))
        finally:
            os.remove(zip_path)
        return sum(1 for info, _ in members if not info.is_dir())

    @staticmethod
    def members(z: zipfile.ZipFile, prefix: str, flatten: bool) -> list:
        """(member, name inside the record) of every member under ``prefix``; UnsafeName
        for a link or an unsafe name anywhere under it."""
        members = []
        for info in z.infolist():
            if not info.filename.startswith(prefix) or info.filename == prefix:
                continue
            name = info.filename[len(prefix):]
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeName(f"the record's zip holds a symbolic link {name!r}; links "
                                 "could point outside the record's folder, so refusing it")
            members.append((info, "/".join(safe_parts(name))))
        tops = {name.split("/")[0] for _, name in members}
        if flatten and len(tops) == 1 and all("/" in name or info.is_dir()
                                               for info, name in members):
            members = [(info, name.split("/", 1)[1]) for info, name in members if "/" in name]
        return members


def human(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB" if size >= 1024**3 else f"{size / 1024**2:.1f} MiB"


# -- repo2docker's content providers, guarded ----------------------------------------------

class Guarded:
    """Mixed into a repo2docker content provider: its requests go through :class:`Http`
    (timeouts, capped answers, counted downloads) and its files through :class:`Files`."""

    http: Http
    files: Files

    def guard(self, http: Http, files: Files):
        self.http, self.files = http, files
        self.session = http.session
        return self

    def _request(self, url, **kwargs):
        return self.http.get(url, **kwargs)

    urlopen = _request

    def fetch_file(self, file_ref, host, output_dir, unzip=False):
        if os.path.realpath(output_dir) != self.files.dest:
            raise FetchFailed(f"repo2docker wrote to {output_dir}, not the build's folder")
        url, name = deep_get(file_ref, host["download"]), deep_get(file_ref, host["filename"])
        yield from self.files.download(self.http, url, name, unzip)


class GuardedZenodo(Guarded, Zenodo):
    pass


class GuardedFigshare(Guarded, Figshare):
    pass


class GuardedDataverse(Guarded, Dataverse):
    pass


class GuardedCKAN(Guarded, CKAN):
    """CKAN's provider writes each resource itself, named after the last part of its URL
    or, if that is empty, its id: the names are checked in the answer it reads them from."""

    def _request(self, url, **kwargs):
        resp = super()._request(url, **kwargs)
        if "/package_show?" in url or "/activity_data_show?" in url:
            for resource in (resp.json().get("result") or {}).get("resources") or []:
                if resource.get("url"):
                    safe_parts(resource["url"].rsplit("/", 1)[-1] or resource.get("id"))
        return resp

    urlopen = _request


# -- the source --------------------------------------------------------------------------

class ArchiveSource(Source):
    """One version of an archive record. It has no other refs: ``resolve`` answers the
    version it was made for, and ``fetch`` gives exactly that version's files or fails
    (:class:`RecordChanged`, :class:`RecordTooLarge`, :class:`UnsafeName`, …)."""

    kind = "archive"

    def __init__(self, provider: "ArchiveProvider", repo: str, record: Record):
        self.provider = provider
        self.repo = repo
        self.record = record

    @property
    def version(self) -> str:
        return self.record.version

    def _same(self, ref) -> bool:
        return ref in (None, "", "HEAD", self.version)

    async def resolve(self, ref: str) -> str | None:
        if not self._same(ref):
            raise InputError("ref", f"{self.repo} is version {self.version} of an archive "
                                    f"record, which has no other refs (got {ref!r})")
        return self.version

    async def fetch(self, ref: str, dest: str,
                    on_line: Callable[[str], None] = lambda line: None) -> str:
        if not self._same(ref):
            raise FetchFailed(f"{self.repo} is version {self.version}, not {ref!r}")
        loop = asyncio.get_running_loop()
        say = on_line
        files = Files(dest, self.provider.max_download_bytes,
                      lambda line: loop.call_soon_threadsafe(say, line))
        try:
            await asyncio.to_thread(self.provider.fetch_record, self.record, files)
        except asyncio.CancelledError:
            files.stopped = True  # the thread stops at its next chunk
            raise
        return self.version


# -- providers ---------------------------------------------------------------------------

class ArchiveProvider(RepoProvider):
    """A provider of records in an archive. Subclasses implement :meth:`locate` (spec →
    Resolved), :meth:`current_version` and :meth:`fetch_files`."""

    archive = ""  # the archive's name in messages
    has_ref = False
    validate_regex = DOI_REGEX

    doi_resolver_url = Unicode("https://doi.org", config=True,
                               help="The DOI resolver; its handle API "
                                    "(<url>/api/handles/<doi>) turns DOIs into URLs.")
    max_download_bytes = Integer(2 * 1024**3, config=True,
                                 help="The most a record's files may take, downloaded or "
                                      "unpacked, for one build.")
    timeout = Float(30.0, config=True, help="Seconds to wait for each answer of an archive.")
    public_addresses_only = Bool(True, config=True,
                                 help="Refuse archives, DOIs and downloads on loopback, "
                                      "private or link-local addresses (a hostile record "
                                      "could name the Hub's own API or a cloud's metadata "
                                      "service). Turn off for an archive on an intranet.")

    async def resolve(self, spec: str) -> Resolved:
        try:
            return await asyncio.to_thread(self.locate, spec)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            raise ArchiveUnreachable(f"{self.archive} answered in a form this Hub does not "
                                     f"understand ({type(e).__name__}: {e})",
                                     field="spec") from None

    def locate(self, spec: str) -> Resolved:
        """:meth:`resolve`, in a thread."""
        raise NotImplementedError

    def current_version(self, record: Record, http: Http) -> str:
        """The version the archive serves for ``record`` now."""
        raise NotImplementedError

    def fetch_files(self, record: Record, http: Http, files: Files) -> None:
        """Download ``record``'s files through ``files``."""
        raise NotImplementedError

    # -- shared steps

    def http(self, files: Files | None = None) -> Http:
        return Http(self.archive, self.timeout, self.public_addresses_only,
                    files.counted if files else None)

    def resolved(self, spec: str, resolved_spec: str, repo_url: str, ref_url: str,
                 slug: str, record: Record) -> Resolved:
        source = ArchiveSource(self, repo_url, record)
        return Resolved(self.id, spec, resolved_spec, repo_url, ref_url, record.version, slug,
                        source)

    def doi(self, spec: str) -> str:
        """The DOI in ``spec`` (``doi:`` and doi.org prefixes allowed)."""
        doi = spec.strip()
        for prefix in DOI_PREFIXES:
            if doi.lower().startswith(prefix):
                doi = doi[len(prefix):]
        if not DOI.fullmatch(doi) or len(doi) > 512:
            raise self.spec_error(spec, f"{self.id}/<DOI> ({self.placeholder})")
        return doi

    def resolve_doi(self, doi: str, http: Http) -> str:
        """The URL a DOI names, from the resolver's handle API."""
        resolver = self.doi_resolver_url.rstrip("/")
        answer = http.json(f"{resolver}/api/handles/{urllib.parse.quote(doi, safe='/')}",
                           missing=f"the DOI {doi} does not exist ({resolver} has no such "
                                   "DOI)")
        for value in answer.get("values") or []:
            if value.get("type") == "URL" and isinstance(value.get("data"), dict):
                return str(value["data"].get("value", ""))
        raise InputError("spec", f"the DOI {doi} names no URL", status=422)

    def doi_url(self, doi: str) -> str:
        return f"{self.doi_resolver_url.rstrip('/')}/{doi}"

    def not_here(self, what: str, url: str) -> InputError:
        return InputError("spec", f"{what} is not a {self.archive} record: it resolves to "
                                  f"{url}", status=422)

    def fetch_record(self, record: Record, files: Files) -> None:
        """Fetch ``record`` into ``files.dest``: the version is read before and after
        the download and must be the one resolved. In a thread."""
        os.makedirs(files.dest, exist_ok=True)
        if os.listdir(files.dest):
            raise FetchFailed(f"{files.dest} is not empty; an archive is fetched into a new "
                              "folder")
        http = self.http(files)
        try:
            self.check_unchanged(record, http, "since it was resolved")
            self.fetch_files(record, http, files)
            self.check_unchanged(record, http, "while it was downloaded")
        except BaseException as e:
            shutil.rmtree(files.dest, ignore_errors=True)
            if isinstance(e, FetchFailed) or not isinstance(e, Exception):
                raise
            if not isinstance(e, ReesError):
                log.warning("fetching %s failed", record.url, exc_info=True)
            message = e.message if isinstance(e, ReesError) else f"{type(e).__name__}: {e}"
            raise FetchFailed(f"fetching {self.archive} record {record.url} failed: "
                              f"{message}") from None
        files.say(f"fetched {record.url} (version {record.version}, {human(files.used)})\n")

    def check_unchanged(self, record: Record, http: Http, when: str) -> None:
        try:
            now = self.current_version(record, http)
        except InputError:
            raise RecordChanged(f"{self.archive} record {record.url} no longer exists (or is "
                                f"no longer public) {when}") from None
        if now != record.version:
            raise RecordChanged(f"{self.archive} record {record.url} changed {when}: the "
                                f"link resolved to version {record.version}, it is now "
                                f"{now}; open the link again to build the new version")

    def run(self, provider: Guarded, url: str, files: Files) -> None:
        """Let a repo2docker content provider fetch ``url`` into ``files.dest``."""
        spec = provider.detect(url)
        if spec is None:
            raise FetchFailed(f"repo2docker's {type(provider).__name__[7:]} content provider "
                              f"does not recognise {url}")
        for line in provider.fetch(spec, files.dest, yield_output=True):
            files.say(line)


def below(url: str, base: str) -> str | None:
    """The path of ``url`` below ``base`` (``/…``, either scheme), or None if ``url`` is
    not on ``base``'s host under its path."""
    u, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(base.rstrip("/"))
    if u.netloc.lower() != b.netloc.lower() or not (u.path + "/").startswith(b.path + "/"):
        return None
    return u.path[len(b.path):]


def under(url: str, base: str) -> bool:
    return below(url, base) is not None


def epoch(text) -> str:
    """Seconds since 1970 of an archive's UTC timestamp (``2024-01-02T03:04:05.678``;
    the fraction and any zone are ignored, as BinderHub does)."""
    match = re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", str(text))
    if not match:
        raise ArchiveUnreachable(f"not a timestamp: {text!r}", field="spec")
    moment = datetime.strptime(match.group(0), "%Y-%m-%dT%H:%M:%S")
    return str(int(moment.replace(tzinfo=timezone.utc).timestamp()))


def slug_escape(text: str) -> str:
    """``text`` with every character but ASCII letters and digits as ``-XX`` (its UTF-8
    bytes in hex), lower-cased: the escaping BinderHub's Dataverse slugs use."""
    safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(c if c in safe else "".join(f"-{b:02x}" for b in c.encode())
                   for c in text).lower()


class ZenodoProvider(ArchiveProvider):
    """Records are immutable: a version is a record id, and a concept DOI resolves (by
    the landing page's redirect, as BinderHub does) to its latest record."""

    id = "zenodo"
    archive = "Zenodo"
    display_name = "Zenodo DOI"
    label = "Zenodo DOI"
    placeholder = "example: 10.5281/zenodo.3242074"
    base_url = Unicode("https://zenodo.org", config=True,
                       help="Where Zenodo (or another InvenioRDM) serves records; its API "
                            "is <base_url>/api/records/.")

    def locate(self, spec: str) -> Resolved:
        doi, http = self.doi(spec), self.http()
        base = self.base_url.rstrip("/")
        page = self.resolve_doi(doi, http)
        if not under(page, base):
            raise self.not_here(doi, page)
        landing = http.landing(page, missing=f"Zenodo has no record at {page}")
        match = re.fullmatch(r"/records?/(\d+)/?", below(landing, base) or "")
        if not match:
            raise self.not_here(doi, landing)
        data = self.record(match.group(1), http)
        record_id = str(data.get("id"))
        if not record_id.isdigit():
            raise ArchiveUnreachable(f"Zenodo's record {match.group(1)} has no id", field="spec")
        record = Record(record_id, f"{base}/records/{record_id}", (record_id,))
        if "zenodo" in doi:  # BinderHub's form: the DOI Zenodo gives each record
            resolved_spec = doi.split("zenodo")[0] + "zenodo." + record_id
        else:  # a DOI of its own (a concept one, perhaps): the record's DOI, if it has one
            resolved_spec = str(data.get("doi") or "")
            resolved_spec = resolved_spec if DOI.fullmatch(resolved_spec) else doi
        return self.resolved(spec, resolved_spec, doi, self.doi_url(resolved_spec),
                             f"zenodo-{record_id}", record)

    def record(self, record_id: str, http: Http) -> dict:
        return http.json(f"{self.base_url.rstrip('/')}/api/records/{record_id}",
                         missing=f"Zenodo has no record {record_id}")

    def current_version(self, record: Record, http: Http) -> str:
        return str(self.record(record.key[0], http).get("id"))

    def fetch_files(self, record: Record, http: Http, files: Files) -> None:
        base = self.base_url.rstrip("/")
        provider = GuardedZenodo().guard(http, files)
        provider.hosts = [{"hostname": [f"{base}/records/"], "api": f"{base}/api/records/",
                           "files": "links.files", "filepath": "entries", "filename": "key",
                           "download": "links.content", "type": "metadata.upload_type"}]
        self.run(provider, record.url, files)


class FigshareProvider(ArchiveProvider):
    """A version is ``<article>.v<n>``; a DOI without ``.v<n>`` resolves to the latest."""

    id = "figshare"
    archive = "Figshare"
    display_name = "FigShare DOI"
    label = "FigShare DOI"
    placeholder = "example: 10.6084/m9.figshare.9782777.v1"
    base_url = Unicode("https://figshare.com", config=True,
                       help="Where Figshare shows articles (what their DOIs resolve to).")
    api_url = Unicode("https://api.figshare.com/v2", config=True, help="Figshare's API.")

    def locate(self, spec: str) -> Resolved:
        doi, http = self.doi(spec), self.http()
        match = re.fullmatch(r"(.*\.(\d+))(?:\.v(\d+))?", doi)
        if not match or match.start(2) < doi.index("/"):
            raise self.spec_error(spec, "figshare/<DOI ending in .<article id>[.v<version>]> "
                                        f"({self.placeholder})")
        unversioned, article, asked = match.groups()
        page = self.resolve_doi(doi, http)
        if not under(page, self.base_url):
            raise self.not_here(doi, page)
        versions = self.versions(article, http)
        if asked is not None and int(asked) not in versions:
            raise InputError("spec", f"Figshare article {article} has no version {asked} "
                                     f"(it has {', '.join(map(str, versions))})", status=422)
        number = int(asked) if asked is not None else max(versions)
        version = f"{article}.v{number}"
        base = self.base_url.rstrip("/")
        record = Record(version, f"{base}/articles/_/{article}/{number}", (article, number))
        resolved_spec = f"{unversioned}.v{number}"
        return self.resolved(spec, resolved_spec, doi, self.doi_url(resolved_spec),
                             f"figshare-{version}", record)

    def versions(self, article: str, http: Http) -> list[int]:
        answer = http.json(f"{self.api_url.rstrip('/')}/articles/{article}/versions",
                           missing=f"Figshare has no article {article}", kind=list)
        versions = sorted(int(v["version"]) for v in answer if isinstance(v, dict)
                          and str(v.get("version", "")).isdigit())
        if not versions:
            raise InputError("spec", f"Figshare article {article} has no public version",
                             status=422)
        return versions

    def current_version(self, record: Record, http: Http) -> str:
        article, number = record.key
        data = http.json(f"{self.api_url.rstrip('/')}/articles/{article}/versions/{number}",
                         missing=f"Figshare has no version {number} of article {article}")
        return f"{data.get('id')}.v{data.get('version')}"

    def fetch_files(self, record: Record, http: Http, files: Files) -> None:
        provider = GuardedFigshare().guard(http, files)
        provider.hosts = [{"hostname": [f"{self.base_url.rstrip('/')}/articles/"],
                           "api": f"{self.api_url.rstrip('/')}/articles/",
                           "filepath": "files", "filename": "name",
                           "download": "download_url"}]
        self.run(provider, record.url, files)


class DataverseProvider(ArchiveProvider):
    """A version is ``<dataset id>.v<major>.<minor>`` of the dataset's latest version;
    the installation is wherever the DOI resolves to (optionally from a list)."""

    id = "dataverse"
    archive = "Dataverse"
    display_name = "Dataverse DOI"
    label = "Dataverse DOI"
    placeholder = "example: 10.7910/DVN/TJCLKP"
    installations = List(Unicode(), config=True,
                         help="Base URLs of the Dataverse installations links may name "
                              "(e.g. https://dataverse.harvard.edu); empty allows any "
                              "installation a DOI resolves to.")

    def locate(self, spec: str) -> Resolved:
        doi, http = self.doi(spec), self.http()
        page = self.resolve_doi(doi, http)
        parts = urllib.parse.urlsplit(page)
        site = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.not_here(doi, page)
        if self.installations and not any(under(site, i) for i in self.installations):
            raise InputError("spec", f"{doi} resolves to {site}, which is not one of the "
                                     "Dataverse installations this Hub fetches from", 422)
        pid = urllib.parse.parse_qs(parts.query).get("persistentId", [f"doi:{doi}"])[0]
        data = self.dataset(site, pid, http)
        authority, identifier = str(data.get("authority")), str(data.get("identifier"))
        pid = f"{data.get('protocol') or 'doi'}:{authority}/{identifier}"
        query = urllib.parse.urlencode({"persistentId": pid})
        record = Record(self.version_of(data), f"{site}/dataset.xhtml?{query}", (site, pid))
        resolved_spec = f"{authority}/{identifier}"
        return self.resolved(spec, resolved_spec, doi,
                             data.get("persistentUrl") or self.doi_url(resolved_spec),
                             f"dataverse-{slug_escape(identifier)}", record)

    def dataset(self, site: str, pid: str, http: Http) -> dict:
        query = urllib.parse.urlencode({"persistentId": pid})
        answer = http.json(f"{site}/api/datasets/:persistentId?{query}",
                           missing=f"{site} has no dataset {pid}")
        if answer.get("status") != "OK" or not isinstance(answer.get("data"), dict):
            raise InputError("spec", f"{site} has no dataset {pid}: "
                                     f"{answer.get('message', answer.get('status'))}", 422)
        return answer["data"]

    def version_of(self, data: dict) -> str:
        latest = data.get("latestVersion") or {}
        if latest.get("versionNumber") is None:
            raise InputError("spec", f"dataset {data.get('identifier')} has no published "
                                     "version", status=422)
        return (f"{data.get('id')}.v{latest['versionNumber']}."
                f"{latest.get('versionMinorNumber', 0)}")

    def current_version(self, record: Record, http: Http) -> str:
        return self.version_of(self.dataset(*record.key, http))

    def fetch_files(self, record: Record, http: Http, files: Files) -> None:
        provider = GuardedDataverse().guard(http, files)
        provider.hosts = [{"hostname": urllib.parse.urlsplit(record.key[0]).netloc}]
        self.run(provider, record.url, files)


class HydroShareProvider(ArchiveProvider):
    """A version is ``<resource id>.v<epoch of its last change>``. Fetched here, not by
    repo2docker: its provider hard-codes www.hydroshare.org and s3.hydroshare.org, fetches
    the bag with urllib (no timeout, no cap) and unpacks it into ``./temp`` of the
    process's working directory, which the service's threads share."""

    id = "hydroshare"
    archive = "HydroShare"
    display_name = "Hydroshare resource"
    label = "Hydroshare resource id"
    placeholder = "example: 8f7c2f0341ef4180b0dbe97f59130756"
    url_encode = True
    validate_regex = "[^/]+"
    base_url = Unicode("https://www.hydroshare.org", config=True,
                       help="Where HydroShare serves resources and its API (/hsapi).")
    bag_poll_interval = Float(10.0, config=True,
                              help="Seconds between asking whether a resource's bag (the "
                                   "zip HydroShare prepares on demand) is ready.")
    bag_timeout = Float(120.0, config=True,
                        help="Seconds to wait for a resource's bag to be prepared.")

    def locate(self, spec: str) -> Resolved:
        match = re.search(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])",
                          urllib.parse.unquote(spec))
        if not match:
            raise self.spec_error(spec, "hydroshare/<resource id: 32 hex digits, or a "
                                        "resource URL or DOI holding one>")
        resource = match.group(0)
        url = f"{self.base_url.rstrip('/')}/resource/{resource}"
        record = Record("", url, (resource,))
        record = Record(self.current_version(record, self.http()), url, (resource,))
        return self.resolved(spec, url, url, url, f"hydroshare-{record.version}", record)

    def current_version(self, record: Record, http: Http) -> str:
        resource = record.key[0]
        answer = http.json(f"{self.base_url.rstrip('/')}/hsapi/resource/{resource}/scimeta/"
                           "elements", missing=f"HydroShare has no public resource {resource}")
        dates = [d for d in answer.get("dates") or [] if isinstance(d, dict)
                 and d.get("type") == "modified"]
        if not dates:
            raise ArchiveUnreachable(f"HydroShare gave no modification date for {resource}",
                                     field="spec")
        return f"{resource}.v{epoch(dates[0].get('start_date'))}"

    def fetch_files(self, record: Record, http: Http, files: Files) -> None:
        resource = record.key[0]
        resp = self.ready_bag(resource, http, files)
        path = files.temp_path()
        with resp:
            files.write(path, resp.iter_content())
        if not zipfile.is_zipfile(path):
            os.remove(path)
            raise FetchFailed(f"HydroShare's bag of {resource} is not a zip file")
        files.say(f"Unpacking the bag of {resource}\n")
        if not files.unpack(path, prefix=f"{resource}/data/contents/"):
            raise FetchFailed(f"the bag of {resource} has no files in data/contents")

    def ready_bag(self, resource: str, http: Http, files: Files) -> requests.Response:
        """The answer that carries the bag: until it is prepared, HydroShare answers
        with a JSON or HTML page instead of (a redirect to) the zip."""
        url = f"{self.base_url.rstrip('/')}/django_s3/download/bags/{resource}.zip"
        deadline = time.monotonic() + self.bag_timeout
        files.say(f"Downloading {url}\n")
        while True:
            resp = http.get(url, stream=True)
            if resp.status_code >= 400:
                resp.close()
                raise FetchFailed(f"HydroShare answered HTTP {resp.status_code} for the bag "
                                  f"of {resource}")
            if not resp.headers.get("content-type", "").startswith(TEXT_TYPES):
                return resp
            resp.close()
            if time.monotonic() + self.bag_poll_interval > deadline or files.stopped:
                raise FetchFailed(f"HydroShare did not prepare the bag of {resource} within "
                                  f"{self.bag_timeout:g}s; try again later")
            files.say(f"The bag is being prepared; asking again in "
                      f"{self.bag_poll_interval:g}s\n")
            time.sleep(self.bag_poll_interval)


class CkanProvider(ArchiveProvider):
    """A version is ``<dataset>.v<epoch of its last change>``; a link naming an activity
    (``/history/<id>`` or ``?activity_id=``) is that activity's version of the dataset."""

    id = "ckan"
    archive = "CKAN"
    display_name = "CKAN dataset"
    label = "CKAN dataset URL"
    placeholder = "https://demo.ckan.org/dataset/my-sample-dataset-001"
    url_encode = True
    validate_regex = "[^/]+"
    installations = List(Unicode(), config=True,
                         help="Base URLs of the CKAN sites links may name (e.g. "
                              "https://demo.ckan.org); empty allows any.")

    def locate(self, spec: str) -> Resolved:
        url = urllib.parse.unquote(spec).strip()
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname \
                or "/dataset/" not in parts.path:
            raise self.spec_error(spec, "ckan/<dataset URL, URL-escaped> "
                                        f"(e.g. {self.placeholder})")
        prefix, rest = parts.path.split("/dataset/", 1)
        segments = rest.split("/")
        activity = urllib.parse.parse_qs(parts.query).get("activity_id", [None])[0]
        if "history" in segments[1:-1]:
            activity = segments[segments.index("history", 1) + 1]
        name = r"[A-Za-z0-9_-]{1,100}"
        if not re.fullmatch(name, segments[0]) or (activity and not re.fullmatch(name, activity)):
            raise self.spec_error(spec, "ckan/<URL-escaped https://<site>/dataset/<name or "
                                        "id>[/history/<activity id>]>")
        site = f"{parts.scheme}://{parts.netloc}{prefix}"
        if self.installations and not any(under(site, i) for i in self.installations):
            raise InputError("spec", f"{site} is not one of the CKAN sites this Hub fetches "
                                     "from", status=422)
        record = Record("", url, (f"{site}/api/3/action/", segments[0], activity))
        record = Record(self.current_version(record, self.http()), url, record.key)
        return self.resolved(spec, url, url, url, f"ckan-{segments[0]}", record)

    def current_version(self, record: Record, http: Http) -> str:
        api, dataset, activity = record.key
        query = {"id": activity, "object_type": "package"} if activity else {"id": dataset}
        call = "activity_data_show" if activity else "package_show"
        answer = http.json(f"{api}{call}?{urllib.parse.urlencode(query)}",
                           missing=f"{record.url} is no public CKAN dataset")
        if not answer.get("success") or not isinstance(answer.get("result"), dict):
            raise InputError("spec", f"{record.url} is no public CKAN dataset", status=422)
        return f"{dataset}.v{epoch(answer['result'].get('metadata_modified'))}"

    def fetch_files(self, record: Record, http: Http, files: Files) -> None:
        self.run(GuardedCKAN().guard(http, files), record.url, files)


ARCHIVE_PROVIDERS = (ZenodoProvider, FigshareProvider, HydroShareProvider, DataverseProvider,
                     CkanProvider)
"""In BinderHub's order (after the git providers)."""
