"""The gallery's cache: per image id, the repository's files, an index and rendered HTML.

Layout under ``cache_dir`` (``{state_dir}/gallery``)::

    <image id>/manifest.json     what the index found (notebooks, README, packages)
    <image id>/files/...         the kept repository files, at their repository paths
    <image id>/html/<hash>.html  rendered notebooks (or <hash>.problem: why not)

An image id names one build of one commit, so entries never go stale; entries of images
that no longer exist are pruned.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field

from traitlets import Integer, Unicode
from traitlets.config import LoggingConfigurable

from .files import ImagePlaces, Limits, extract_repository, kind_of, README_NAMES
from .packages import declared_packages
from .render import NotebookProblem, notebook_html, too_large_message

MANIFEST_FORMAT = 1
RENDER_VERSION = 2  # 2: images embedded only from the notebook's own folder


@dataclass(frozen=True)
class NotebookEntry:
    path: str
    size: int
    stored: bool


@dataclass
class Manifest:
    image_id: str
    places: ImagePlaces
    limits: Limits
    notebooks: list[NotebookEntry] = field(default_factory=list)
    notebooks_truncated: bool = False
    scan_truncated: bool = False
    readme: str = ""  # repository path of the README, "" if none
    packages: dict[str, list[str]] = field(default_factory=dict)

    def notebook(self, path: str) -> NotebookEntry | None:
        return next((n for n in self.notebooks if n.path == path), None)

    def to_json(self) -> str:
        return json.dumps({"format": MANIFEST_FORMAT, **asdict(self)}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "Manifest | None":
        data = json.loads(text)
        if data.pop("format", None) != MANIFEST_FORMAT:
            return None
        data["places"] = ImagePlaces(**data["places"])
        data["limits"] = Limits(**data["limits"])
        data["notebooks"] = [NotebookEntry(**n) for n in data["notebooks"]]
        return cls(**data)


def cache_key(image_id: str) -> str:
    return image_id.split(":", 1)[-1]


class Gallery(LoggingConfigurable):
    """Indexes environments' images and renders their notebooks, caching both."""

    max_notebook_bytes = Integer(
        10 * 1024**2, config=True,
        help="Notebooks larger than this are listed but not rendered (the reader is told).")
    max_notebooks = Integer(
        500, config=True, help="Notebooks listed per environment; beyond this, a note says so.")
    max_file_bytes = Integer(
        2 * 1024**2, config=True,
        help="Largest README, dependency file or image (embedded in renderings) kept.")
    max_scan_bytes = Integer(
        2 * 1024**3, config=True,
        help="How much of an environment's repository folder is read when indexing it.")
    cache_dir = Unicode("", config=True,
                        help="Where the gallery keeps files and renderings; '' for "
                             "{state_dir}/gallery.")
    index_concurrency = Integer(
        1, config=True, help="Images indexed at once after builds (each streams its files "
                             "from Docker).")

    def __init__(self, docker_api, default_cache_dir: str = "", **kwargs):
        """``docker_api()`` returns a docker ``APIClient``."""
        super().__init__(**kwargs)
        self._docker_api = docker_api
        if not self.cache_dir:
            self.cache_dir = default_cache_dir
        self._locks: dict[str, asyncio.Lock] = {}
        self._manifests: dict[str, Manifest] = {}  # read from disk once per image
        self._indexing: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(self.index_concurrency)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_notebook_bytes, self.max_notebooks, self.max_file_bytes,
                      self.max_scan_bytes)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _dir(self, image_id: str, *parts: str) -> str:
        return os.path.join(self.cache_dir, cache_key(image_id), *parts)

    def file_path(self, manifest: Manifest, repo_path: str) -> str | None:
        """The cached copy of a repository file, if it was kept."""
        if repo_path.startswith("/") or ".." in repo_path.split("/"):
            return None
        path = self._dir(manifest.image_id, "files", *repo_path.split("/"))
        return path if os.path.isfile(path) else None

    # -- indexing -------------------------------------------------------------------------

    def _load(self, image_id: str) -> Manifest | None:
        try:
            with open(self._dir(image_id, "manifest.json")) as f:
                manifest = Manifest.from_json(f.read())
        except (OSError, ValueError, TypeError, KeyError):
            return None
        if manifest is None or manifest.limits != self.limits:
            return None  # an older format, or indexed under other limits: index again
        return manifest

    def cached(self, image_id: str) -> Manifest | None:
        """The index of an image if it was made (never reads the image itself)."""
        key = cache_key(image_id)
        if key not in self._manifests:
            manifest = self._load(image_id)
            if manifest is None:
                return None
            self._manifests[key] = manifest
        return self._manifests[key]

    async def manifest(self, image_id: str) -> Manifest:
        """The index of an image's repository files, made now if it was not yet."""
        manifest = self.cached(image_id)
        if manifest is not None:
            return manifest
        async with self._lock(cache_key(image_id)):
            manifest = self.cached(image_id)
            if manifest is None:
                manifest = await asyncio.to_thread(self._index, image_id)
                self._manifests[cache_key(image_id)] = manifest
            return manifest

    def index_soon(self, env) -> None:
        """Index a newly built environment's image in the background, so the gallery
        never reads images while someone waits."""
        async def index():
            async with self._slots:
                try:
                    await self.manifest(env.image_id)
                except Exception as e:  # the page says so when asked; keep the service up
                    self.log.warning("gallery: could not index %s: %s", env.name, e)

        task = asyncio.get_running_loop().create_task(index())
        self._indexing.add(task)
        task.add_done_callback(self._indexing.discard)

    def _index(self, image_id: str) -> Manifest:
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        work = tempfile.mkdtemp(prefix=cache_key(image_id) + ".partial-", dir=self.cache_dir)
        try:
            files = os.path.join(work, "files")
            self.log.info("gallery: reading the repository files of image %s", image_id)
            places, found = extract_repository(self._docker_api(), image_id, files,
                                               self.limits)
            manifest = Manifest(
                image_id=image_id, places=places, limits=self.limits,
                notebooks=[NotebookEntry(p, s, p in found.stored) for p, s in
                           sorted(found.notebooks.items(),
                                  key=lambda item: (item[0].count("/"), item[0].lower()))],
                notebooks_truncated=found.notebooks_truncated,
                scan_truncated=found.scan_truncated,
                readme=_choose_readme(found.stored),
                packages=declared_packages(_dependency_texts(files, found.stored)),
            )
            with open(os.path.join(work, "manifest.json"), "w") as f:
                f.write(manifest.to_json())
            final = self._dir(image_id)
            shutil.rmtree(final, ignore_errors=True)  # an entry under other limits
            os.rename(work, final)
            return manifest
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # -- rendering ------------------------------------------------------------------------

    async def notebook_html(self, manifest: Manifest, path: str) -> str:
        """The rendered notebook; raises KeyError if not listed, NotebookProblem if unshowable."""
        entry = manifest.notebook(path)
        if entry is None:
            raise KeyError(path)
        if not entry.stored:
            raise NotebookProblem(too_large_message(entry.size, self.max_notebook_bytes))
        # the renderer's version is part of the name: a safer renderer never serves what
        # an older one cached
        name = hashlib.sha256(f"{RENDER_VERSION}:{path}".encode("utf-8")).hexdigest()[:32]
        html_path = self._dir(manifest.image_id, "html", name + ".html")
        problem_path = self._dir(manifest.image_id, "html", name + ".problem")
        async with self._lock(html_path):
            for cached, is_problem in ((html_path, False), (problem_path, True)):
                if os.path.exists(cached):
                    with open(cached, encoding="utf-8") as f:
                        text = f.read()
                    if is_problem:
                        raise NotebookProblem(text)
                    return text
            source = self.file_path(manifest, path)
            if source is None:
                raise NotebookProblem("This notebook is missing from the gallery's cache "
                                      f"({self.cache_dir}); an admin can remove that "
                                      "folder to have it rebuilt.")
            try:
                html = await asyncio.to_thread(notebook_html, source, self.max_notebook_bytes)
            except NotebookProblem as problem:
                _write_atomic(problem_path, str(problem))
                raise
            _write_atomic(html_path, html)
            return html

    # -- housekeeping ---------------------------------------------------------------------

    def prune(self, image_ids: set[str]) -> None:
        """Forget images that no longer exist (and work left by an interrupted index)."""
        keep = {cache_key(i) for i in image_ids}
        try:
            names = os.listdir(self.cache_dir)
        except FileNotFoundError:
            return
        for key in list(self._manifests):
            if key not in keep:
                del self._manifests[key]
        for name in names:
            if name.split(".partial-", 1)[0] not in keep and name not in self._busy():
                self.log.info("gallery: removing the cache of image %s", name)
                shutil.rmtree(os.path.join(self.cache_dir, name), ignore_errors=True)

    def _busy(self) -> set[str]:
        return {name for name, lock in self._locks.items() if lock.locked()}


def _write_atomic(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.partial-{os.getpid()}"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(partial, path)


def _choose_readme(stored: set[str]) -> str:
    by_name = {p.lower(): p for p in stored if kind_of(p) == "readme"}
    return next((by_name[n] for n in README_NAMES if n in by_name), "")


def _dependency_texts(files_dir: str, stored: set[str]) -> dict[str, str]:
    texts = {}
    for path in stored:
        if kind_of(path) == "dependency":
            with open(os.path.join(files_dir, *path.split("/")), encoding="utf-8",
                      errors="replace") as f:
                texts[path] = f.read()
    return texts
