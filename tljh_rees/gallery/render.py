"""Static HTML from notebooks and READMEs; nothing in them is executed.

Notebooks are converted with nbconvert's lab template minus its scripts (they would be
blocked anyway: rendered notebooks are served sandboxed, see ``handlers.gallery``).
READMEs are shown inside the service's own pages, so their raw HTML is escaped and their
links checked instead.
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
from jinja2 import DictLoader
from nbconvert import HTMLExporter

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


def notebook_html(path: str, max_bytes: int) -> str:
    """The notebook at ``path`` as a standalone HTML document (raises NotebookProblem)."""
    nb = read_notebook(path, max_bytes)
    exporter = HTMLExporter(template_name="lab", template_file=STATIC_TEMPLATE,
                            extra_loaders=[DictLoader({STATIC_TEMPLATE: _TEMPLATE_SOURCE})],
                            embed_images=True)
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
