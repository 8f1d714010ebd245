"""Static HTML from notebooks and READMEs; nothing in them is executed.

Notebooks are converted with nbconvert's lab template minus its scripts (they would be
blocked anyway: rendered notebooks are served sandboxed, see ``handlers.gallery``).
READMEs are shown inside the service's own pages, so their raw HTML is escaped and their
links checked instead.

Both embed relative images as data URLs, and only through an ``image_file`` resolver that
answers from the repository files the gallery kept: the service runs as root, so a path
such as /etc/shadow, ../../proc/self/environ or a symlink must never reach open().
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import posixpath
import re
import warnings
from typing import Callable, Optional

import mistune
import nbformat
from bs4 import BeautifulSoup
from jinja2 import DictLoader, pass_context
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

from .files import IMAGE_EXTENSIONS

# The lab template without the <script> tags it would add (require.js, MathJax, widgets,
# mermaid); links open outside the frame the notebook is shown in.
STATIC_TEMPLATE = "rees_static.html.j2"
_TEMPLATE_SOURCE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<base target="_blank">{%- endblock extra_css -%}
"""


class NotebookProblem(Exception):
    """A notebook the gallery cannot show; the message tells the reader why."""


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def too_large_message(size: int, limit: int) -> str:
    return (f"This notebook is {megabytes(size)}; the gallery shows notebooks up to "
            f"{megabytes(limit)}. Launch the environment to open it.")


def read_notebook(path: str, max_bytes: int) -> nbformat.NotebookNode:
    """Load and validate a notebook, or raise :class:`NotebookProblem` saying what is wrong."""
    size = os.path.getsize(path)
    if size > max_bytes:
        raise NotebookProblem(too_large_message(size, max_bytes))
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NotebookProblem(f"This file is not a valid notebook: it is not UTF-8 text "
                              f"(byte {e.start}).") from None
    try:
        nb = nbformat.reads(text, as_version=4)
    except nbformat.reader.NotJSONError:
        raise NotebookProblem("This file is not a valid notebook: it is not JSON.") from None
    except Exception as e:  # nbformat raises many kinds for malformed documents
        raise NotebookProblem(f"This file is not a valid notebook: {_short(e)}") from None
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "the top level"
        raise NotebookProblem(f"This file is not a valid notebook (nbformat "
                              f"{nb.get('nbformat', '?')}): at {where}: "
                              f"{_short(e.message)}") from None
    return nb


def _short(error, limit: int = 300) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def folder_images(folder: str) -> Callable[[str], Optional[str]]:
    """An ``image_file`` resolver: the image files in ``folder`` and below it.

    Absolute paths, '..' leading out of the folder, and symlinks anywhere on the way give
    None, so a notebook embeds what sits beside it and never a file of this machine.
    """
    root = os.path.realpath(folder)

    def image_file(url: str) -> Optional[str]:
        rel = posixpath.normpath(url)
        if (not _is_relative(url) or rel == ".." or rel.startswith("../") or "\0" in rel
                or not rel.lower().endswith(IMAGE_EXTENSIONS)):
            return None
        path = os.path.join(root, *rel.split("/"))
        if os.path.realpath(path) != path or not os.path.isfile(path):
            return None  # a symlink on the way (the gallery never writes one) or no file
        return path

    return image_file


class _NotebookMarkdownRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, embedding relative images only via ``image_file``.

    nbconvert's own embedding is left off: before 7.17.1 it opened any path a notebook
    named, and it still follows symlinks. Attachments are the cell's own data, as before.
    """

    def __init__(self, image_file: Callable[[str], Optional[str]], **kwargs):
        super().__init__(embed_images=False, **kwargs)
        self._image_file = image_file

    def _embedded(self, url) -> Optional[str]:
        path = self._image_file(url) if isinstance(url, str) and _is_relative(url) else None
        return data_url(path) if path else None

    def image(self, text: str, url: str, title: Optional[str] = None) -> str:
        return super().image(text, self._embedded(url) or url, title)

    def block_html(self, html: str) -> str:
        return super().block_html(self._embed_html_images(html))

    def inline_html(self, html: str) -> str:
        return super().inline_html(self._embed_html_images(html))

    def _embed_html_images(self, html: str) -> str:
        """<img src="figure.png"> in a cell's raw HTML, embedded like markdown images."""
        if "<img" not in html.lower():
            return html
        soup = BeautifulSoup(html, features="html.parser")
        for img in soup.find_all("img"):
            embedded = self._embedded(img.attrs.get("src"))
            if embedded:
                img.attrs["src"] = embedded
        return str(soup)


class _StaticHTMLExporter(HTMLExporter):
    """The HTML exporter with markdown cells rendered by :class:`_NotebookMarkdownRenderer`."""

    def __init__(self, image_file: Callable[[str], Optional[str]], **kwargs):
        super().__init__(**kwargs)
        self._image_file = image_file

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = _NotebookMarkdownRenderer(
            self._image_file, escape=False, attachments=cell.get("attachments", {}),
            anchor_link_text=self.anchor_link_text,
            exclude_anchor_links=self.exclude_anchor_links, **self.lexer_options)
        return MarkdownWithMath(renderer=renderer).render(source)


def notebook_html(path: str, max_bytes: int,
                  image_file: Optional[Callable[[str], Optional[str]]] = None) -> str:
    """The notebook at ``path`` as a standalone HTML document (raises NotebookProblem).

    ``image_file(url)`` gives the local file of a relative image URL, or None; by default
    the images in the notebook's folder (see :func:`folder_images`).
    """
    nb = read_notebook(path, max_bytes)
    exporter = _StaticHTMLExporter(
        image_file or folder_images(os.path.dirname(path)), template_name="lab",
        template_file=STATIC_TEMPLATE,
        extra_loaders=[DictLoader({STATIC_TEMPLATE: _TEMPLATE_SOURCE})])
    resources = {"metadata": {"name": os.path.splitext(os.path.basename(path))[0],
                              "path": os.path.dirname(path)}}
    try:
        with warnings.catch_warnings():
            # e.g. "IPython3 lexer unavailable": the service has no IPython; Python's is used
            warnings.simplefilter("ignore", UserWarning)
            body, _ = exporter.from_notebook_node(nb, resources=resources)
    except Exception as e:  # a notebook nbconvert cannot convert is a reader-facing fact
        raise NotebookProblem(f"This notebook could not be rendered: {_short(e)}") from None
    return body


# -- README ------------------------------------------------------------------------------

def _is_relative(url: str) -> bool:
    return bool(url) and not url.startswith(("/", "#")) and ":" not in url.split("/", 1)[0]


def _allowed_absolute(url: str, schemes: tuple[str, ...]) -> bool:
    """Site paths, fragments and the given schemes; never javascript:, data: and the like."""
    if url.startswith("//"):
        return "https" in schemes
    if url.startswith(("/", "#")):
        return True
    return url.split(":", 1)[0].lower().strip() in schemes


def data_url(path: str) -> str:
    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        return f"data:{mime};base64,{base64.b64encode(f.read()).decode('ascii')}"


def _plain(rendered: str) -> str:
    """Alt text as mistune hands it over (inline HTML) back to escaped plain text."""
    return html.escape(html.unescape(re.sub(r"<[^>]*>", "", rendered)))


class _ReadmeRenderer(mistune.HTMLRenderer):
    """Raw HTML escaped; relative images embedded from the repository; relative links to
    the repository's notebooks pointed at their gallery pages, other relative links dropped.
    """

    def __init__(self, image_file: Callable[[str], Optional[str]],
                 notebook_url: Callable[[str], Optional[str]]):
        super().__init__(escape=True)
        self._image_file = image_file
        self._notebook_url = notebook_url

    def link(self, text: str, url: str, title: Optional[str] = None) -> str:
        if _is_relative(url):
            target = self._notebook_url(posixpath.normpath(url.split("#", 1)[0]))
            if target is None:
                return text
            url = target
        elif not _allowed_absolute(url, ("http", "https", "mailto")):
            return text
        title_attr = f' title="{html.escape(title)}"' if title else ""
        return f'<a href="{html.escape(url)}"{title_attr}>{text}</a>'

    def image(self, text: str, url: str, title: Optional[str] = None) -> str:
        if _is_relative(url):
            path = self._image_file(posixpath.normpath(url))
            if path is None:
                return _plain(text)
            src = data_url(path)
        elif _allowed_absolute(url, ("http", "https")):
            src = url
        else:
            return _plain(text)
        title_attr = f' title="{html.escape(title)}"' if title else ""
        return f'<img src="{html.escape(src)}" alt="{_plain(text)}"{title_attr}>'


def readme_html(text: str, filename: str, image_file: Callable[[str], Optional[str]],
                notebook_url: Callable[[str], Optional[str]]) -> str:
    """HTML safe to place in the service's own pages."""
    if not filename.lower().endswith((".md", ".markdown")):
        return f"<pre class=\"rees-readme-text\">{html.escape(text)}</pre>"
    markdown = mistune.create_markdown(
        renderer=_ReadmeRenderer(image_file, notebook_url),
        plugins=["strikethrough", "table", "url"])
    return markdown(text)
