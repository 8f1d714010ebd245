"""The gallery: built environments, their READMEs and notebooks rendered statically, and
links that launch them.

Rendered notebooks are untrusted HTML. They are served as their own documents with a
Content-Security-Policy whose ``sandbox`` directive (no ``allow-scripts``, no
``allow-same-origin``) gives them an opaque origin and no scripts, even when opened
outside the gallery's sandboxed iframe; so nothing in a notebook can act on the Hub's
origin as the viewer.
"""

from __future__ import annotations

import tarfile
from urllib.parse import quote, urlencode

from docker.errors import DockerException, NotFound
from markupsafe import Markup
from tornado import web
from tornado.escape import xhtml_escape
from tornado.log import app_log

from ..gallery.listing import GalleryEntry
from ..gallery.packages import normalize
from ..gallery.render import NotebookProblem, readme_html
from ..gallery.store import Gallery
from ..store.models import Environment, iso
from .base import APIHandler, BaseHandler
from .pages import PageHandler

# What the iframe showing a rendered notebook may do: open links in new tabs. No scripts,
# no same-origin rights, no forms, no navigating the Hub's page.
FRAME_SANDBOX = "allow-popups allow-popups-to-escape-sandbox"
RENDERED_CSP = "; ".join([
    f"sandbox {FRAME_SANDBOX}",
    "default-src 'none'",
    "img-src data: https:",
    "media-src data:",
    "style-src 'unsafe-inline'",
    "font-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'self'",
])
# The gallery's own pages: only the service's and the Hub's own scripts and styles.
PAGE_CSP = "; ".join([
    "default-src 'self'",
    "img-src 'self' data: https:",
    "style-src 'self' 'unsafe-inline'",
    "script-src 'self'",
    "frame-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])
PAGE_SIZE = 24
INDEXING = "Its files are being read; this takes a moment after a build."
PACKAGE_KINDS = {"python": "Python (pip)", "conda": "Conda", "r": "R", "apt": "System (apt)"}


class GalleryMixin:
    """Finding the environments a viewer may see, with their indexes, and their URLs."""

    @property
    def gallery(self) -> Gallery:
        return self.settings["gallery"]

    def environments(self) -> list[Environment]:
        """What the gallery shows the viewer (``rees.gallery.show``: every environment
        they may launch, or only public ones), by name."""
        return self.catalog.visible(self.viewer, launchable_only=True,
                                    public_only=self.settings["gallery_show"] == "public")

    def listed(self, env: Environment) -> GalleryEntry:
        """An entry from the index made after its build (never reads the image now)."""
        manifest = self.gallery.cached(env.image_id)
        if manifest is None:
            self.gallery.index_soon(env)
            return GalleryEntry(env, None, INDEXING)
        return GalleryEntry(env, manifest)

    def matching(self) -> list[GalleryEntry]:
        filters = self.filters()
        entries = [self.listed(env) for env in self.environments()]
        return [e for e in entries if e.matches(filters["q"], filters["repo"],
                                                filters["package"])]

    def page_of_entries(self, offset: int, limit: int) -> tuple[list[GalleryEntry], int]:
        """A page of the matching entries (by name) and how many match. Words and
        packages are searched in every entry's index; without them, the catalog pages
        (so a page costs the same however many environments there are)."""
        filters = self.filters()
        if filters["q"] or filters["package"]:
            entries = self.matching()
            return entries[offset:offset + limit], len(entries)
        page = self.catalog.page(self.viewer, repo=filters["repo"], offset=offset,
                                 limit=limit, launchable_only=True,
                                 public_only=self.settings["gallery_show"] == "public")
        return [self.listed(env) for env, _ in page.items], page.total

    async def find(self, name: str) -> GalleryEntry:
        env = next((e for e in self.environments() if e.name == name), None)
        if env is None:
            raise web.HTTPError(404, "%s", f"There is no environment '{name}' in the "
                                "gallery: it may have been deleted, or not be shared with you.")
        try:
            return GalleryEntry(env, await self.gallery.manifest(env.image_id))
        except NotFound:
            return GalleryEntry(env, None, "The environment's image was removed while its "
                                           "files were being read.")
        except (DockerException, OSError, tarfile.TarError) as e:
            app_log.warning("gallery: could not index %s (%s): %s", env.name, env.image, e)
            return GalleryEntry(env, None, f"The environment's files could not be read: {e}")

    def notebook_of(self, entry: GalleryEntry, path: str):
        notebook = entry.manifest.notebook(path) if entry.manifest else None
        if notebook is None:
            raise web.HTTPError(404, "%s", f"Environment '{entry.env.name}' has no notebook "
                                           f"'{path}'.")
        return notebook

    # -- URLs -----------------------------------------------------------------------------

    def page_url(self, env: Environment, *parts: str) -> str:
        return self.urls("gallery", quote(env.name, safe=""), *parts)

    def notebook_url(self, env: Environment, path: str) -> str:
        return self.page_url(env, "notebooks", quote(path))

    def render_url(self, env: Environment, path: str) -> str:
        return self.page_url(env, "render", quote(path))

    def launch_url(self, entry: GalleryEntry, path: str | None = None) -> str:
        """The launch page; ``urlpath`` opens the notebook in JupyterLab."""
        url = self.urls("launch", quote(entry.env.name, safe=""))
        server_path = entry.manifest.places.server_path(path) if (path and entry.manifest) \
            else None
        if server_path:
            url += "?" + urlencode({"urlpath": "lab/tree/" + quote(server_path)})
        return url

    # -- descriptions (the JSON API and the pages share them) -----------------------------

    def describe(self, entry: GalleryEntry) -> dict:
        env, manifest = entry.env, entry.manifest
        notebooks = []
        for nb in manifest.notebooks if manifest else []:
            item = {"path": nb.path, "size": nb.size, "url": self.notebook_url(env, nb.path),
                    "launch_url": self.launch_url(entry, nb.path)}
            if not nb.stored:
                item["problem"] = "too large"
            notebooks.append(item)
        return {
            "name": env.name, "display_name": entry.display_name,
            "description": env.description, "repo": env.repo,
            "ref": env.ref, "commit": env.commit,
            "owner": env.owner, "created": iso(env.built),
            "public": env.public, "image": env.image,
            "packages": entry.packages(),
            "notebooks": notebooks,
            "notebooks_truncated": bool(manifest and manifest.notebooks_truncated),
            "files_truncated": bool(manifest and manifest.scan_truncated),
            "readme": manifest.readme if manifest else "",
            "problem": entry.problem,
            "url": self.page_url(env),
            "launch_url": self.launch_url(entry),
        }

    def readme(self, entry: GalleryEntry) -> str:
        manifest = entry.manifest
        source = self.gallery.file_path(manifest, manifest.readme) \
            if manifest and manifest.readme else None
        if source is None:
            return ""
        with open(source, encoding="utf-8", errors="replace") as f:
            text = f.read()

        def notebook_link(path: str) -> str | None:
            return self.notebook_url(entry.env, path) if manifest.notebook(path) else None

        return readme_html(text, manifest.readme,
                           image_file=lambda p: self.gallery.file_path(manifest, p),
                           notebook_url=notebook_link)

    def filters(self) -> dict:
        return {k: self.get_argument(k, "").strip() for k in ("q", "repo", "package")}


# -- pages ------------------------------------------------------------------------------

class GalleryPageHandler(GalleryMixin, PageHandler):
    def set_default_headers(self):
        self.set_header("Content-Security-Policy", PAGE_CSP)


class GalleryPage(GalleryPageHandler):
    @web.authenticated
    def get(self):
        filters, everything = self.filters(), [self.listed(e) for e in self.environments()]
        entries = self.matching()
        offset = max(0, self.int_argument("offset", 0))
        shown = entries[offset:offset + PAGE_SIZE]

        def page_link(start: int) -> str:
            query = {k: v for k, v in filters.items() if v}
            return self.urls("gallery") + "?" + urlencode({**query, "offset": start})

        self.render_page(
            "gallery.html", active="gallery",
            cards=[{"env": self.describe(e), "search": e.search_text(),
                    "packages": " ".join(normalize(n) for n in e.package_names())}
                   for e in shown],
            total=len(everything), matching=len(entries), offset=offset,
            previous=page_link(max(0, offset - PAGE_SIZE)) if offset else None,
            next=page_link(offset + PAGE_SIZE) if offset + PAGE_SIZE < len(entries) else None,
            repos=sorted({e.env.repo for e in everything}),
            packages=sorted({n for e in everything for n in e.package_names()},
                            key=str.lower),
            filters=filters, package_kinds=PACKAGE_KINDS,
        )


class EnvironmentPage(GalleryPageHandler):
    @web.authenticated
    async def get(self, name):
        entry = await self.find(name)
        self.render_page("gallery_environment.html", active="gallery",
                         env=self.describe(entry), readme=Markup(self.readme(entry)),
                         package_kinds=PACKAGE_KINDS)


class NotebookPage(GalleryPageHandler):
    @web.authenticated
    async def get(self, name, path):
        entry = await self.find(name)
        self.notebook_of(entry, path)
        problem = ""
        try:
            await self.gallery.notebook_html(entry.manifest, path)
        except NotebookProblem as e:
            problem = str(e)
        self.render_page("gallery_notebook.html", active="gallery",
                         env=self.describe(entry), path=path, problem=problem,
                         render_url=self.render_url(entry.env, path),
                         launch_url=self.launch_url(entry, path), sandbox=FRAME_SANDBOX)


class RenderedNotebook(GalleryMixin, BaseHandler):
    """A rendered notebook as its own sandboxed document (the iframe's source)."""

    def set_default_headers(self):
        self.set_header("Content-Security-Policy", RENDERED_CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", "private, no-cache")

    @web.authenticated
    async def get(self, name, path):
        entry = await self.find(name)
        self.notebook_of(entry, path)
        try:
            html = await self.gallery.notebook_html(entry.manifest, path)
        except NotebookProblem as e:
            raise web.HTTPError(422, "%s", str(e)) from None
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(html)

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message % exc.args if isinstance(exc, web.HTTPError) and \
            exc.log_message else "The notebook could not be shown."
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(f"<!DOCTYPE html><meta charset=\"utf-8\"><title>{status_code}</title>"
                    f"<p>{xhtml_escape(message)}</p>")


# -- JSON API ---------------------------------------------------------------------------

class GalleryAPI(GalleryMixin, APIHandler):
    """``?q=&repo=&package=&offset=&limit=``: the matching environments, a page at a time."""

    @web.authenticated
    def get(self):
        offset = max(0, self.int_argument("offset", 0))
        limit = max(1, min(self.int_argument("limit", 50), 200))
        entries, total = self.page_of_entries(offset, limit)
        self.write_json({"environments": [self.describe(e) for e in entries],
                         "total": total, "offset": offset, "limit": limit})


class GalleryEnvironmentAPI(GalleryMixin, APIHandler):
    @web.authenticated
    async def get(self, name):
        entry = await self.find(name)
        self.write_json({**self.describe(entry), "readme_html": self.readme(entry)})


class GalleryNotebookAPI(GalleryMixin, APIHandler):
    """Whether a notebook can be shown: 200 with its URLs, or 422 saying why not."""

    @web.authenticated
    async def get(self, name, path):
        entry = await self.find(name)
        notebook = self.notebook_of(entry, path)
        try:
            await self.gallery.notebook_html(entry.manifest, path)
        except NotebookProblem as e:
            raise web.HTTPError(422, "%s", str(e)) from None
        self.write_json({"path": path, "size": notebook.size,
                         "html_url": self.render_url(entry.env, path),
                         "url": self.notebook_url(entry.env, path),
                         "launch_url": self.launch_url(entry, path)})


def routes() -> list:
    env = r"([^/]+)"
    return [
        ("gallery", GalleryPage),
        (f"gallery/{env}", EnvironmentPage),
        (f"gallery/{env}/notebooks/(.+)", NotebookPage),
        (f"gallery/{env}/render/(.+)", RenderedNotebook),
        ("api/gallery", GalleryAPI),
        (f"api/gallery/{env}", GalleryEnvironmentAPI),
        (f"api/gallery/{env}/notebooks/(.+)", GalleryNotebookAPI),
    ]
