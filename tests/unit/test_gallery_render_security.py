"""A notebook cannot make the gallery embed a file of the machine that renders it.

The service renders as root and every logged-in reader sees the page, so an image that
names /etc/shadow, climbs out with '..', or is a symlink must not come back base64-encoded.
nbconvert 7.17.1 refuses the first two itself (it still follows symlinks), so each test
also runs with nbconvert's embedding put back as it was before 7.17.1: the gallery's own
resolver must be what keeps the files out. A real image beside the notebook is embedded
in every case, so the tests can tell "refused" from "nothing embedded at all".
"""

from __future__ import annotations

import base64
import os
import re

import nbformat
import pytest
from nbconvert.filters.markdown_mistune import IPythonRenderer
from nbformat.v4 import new_markdown_cell, new_notebook

from tljh_rees.gallery.render import folder_images, notebook_html

# A 1x1 PNG: the real image beside the notebook.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
                       "BQIAX8jx0gAAAABJRU5ErkJggg==")


def before_7_17_1(self, src):
    """nbconvert's _src_to_base64 before 7.17.1: any path the notebook names is read."""
    path = os.path.join(self.path, src)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


@pytest.fixture(params=["nbconvert as installed", "nbconvert before 7.17.1"])
def nbconvert_embedding(request, monkeypatch):
    if request.param == "nbconvert before 7.17.1":
        monkeypatch.setattr(IPythonRenderer, "_src_to_base64", before_7_17_1)
    return request.param


def own_secret(tmp_path) -> str:
    """A file outside the repository with distinctive content and an image's name (so
    only its place can be the reason to refuse it)."""
    path = tmp_path / "outside" / "secret.png"
    path.parent.mkdir()
    path.write_bytes(b"TOP-SECRET-7f3a9c shadow-like content\n")
    return str(path)


@pytest.fixture(params=["a file of the test's own", "/etc/hostname"])
def secret(request, tmp_path) -> str:
    if request.param == "/etc/hostname":
        if not (os.access("/etc/hostname", os.R_OK) and os.path.getsize("/etc/hostname")):
            pytest.skip("no readable /etc/hostname here")
        return "/etc/hostname"
    return own_secret(tmp_path)


def leaked(html: str, secret: bytes) -> bool:
    """Whether ``secret`` is in the page: as text, base64-encoded, or in any data URL."""
    text = secret.decode("utf-8", "replace").strip()
    encoded = base64.b64encode(secret).decode("ascii").rstrip("=")
    if len(text) >= 8 and (text in html or encoded in html):
        return True  # (a short secret such as "vm" is checked by the data URLs only)
    for payload in re.findall(r"data:[^,\"'\s]*;base64,([A-Za-z0-9+/=]+)", html):
        if secret in base64.b64decode(payload + "=" * (-len(payload) % 4)):
            return True
    return False


def hostile_repository(tmp_path, secret: str) -> str:
    """repo/notebooks/analysis.ipynb naming ``secret`` every way, next to a real image."""
    notebooks = tmp_path / "repo" / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    (notebooks / "figure.png").write_bytes(PNG)
    (notebooks / "link.png").symlink_to(secret)
    outside = tmp_path / "outside-dir"
    outside.mkdir()
    (outside / "x.png").symlink_to(secret)
    (notebooks / "imgs").symlink_to(outside)  # a symlinked folder on the way
    climb = os.path.relpath(secret, notebooks)
    nb = new_notebook(cells=[new_markdown_cell(
        f"![absolute]({secret}) ![climb]({climb}) ![link](link.png) ![dir](imgs/x.png)\n\n"
        f"<img src=\"{secret}\"> <img src=\"{climb}\"> <img src=\"link.png\">\n\n"
        "Inline <img src=\"link.png\"> too.\n\n"
        "![control](figure.png) <img src=\"figure.png\">")])
    path = notebooks / "analysis.ipynb"
    nbformat.write(nb, str(path))
    return str(path)


def test_notebook_images_never_come_from_outside_its_folder(tmp_path, secret,
                                                           nbconvert_embedding):
    with open(secret, "rb") as f:
        content = f.read()
    html = notebook_html(hostile_repository(tmp_path, secret), 10**7)
    assert not leaked(html, content), f"{secret} embedded ({nbconvert_embedding})"
    control = "data:image/png;base64," + base64.b64encode(PNG).decode("ascii")
    assert html.count(control) == 2, "the real image beside the notebook is embedded"


def test_the_resolver_allows_only_image_files_in_the_folder(tmp_path):
    secret = own_secret(tmp_path)
    path = hostile_repository(tmp_path, secret)
    folder = os.path.dirname(path)
    (tmp_path / "repo" / "notebooks" / "sub").mkdir()
    (tmp_path / "repo" / "notebooks" / "sub" / "plot.PNG").write_bytes(PNG)
    (tmp_path / "repo" / "notebooks" / "notes.txt").write_text("not an image")
    image_file = folder_images(folder)
    assert image_file("figure.png") == os.path.join(os.path.realpath(folder), "figure.png")
    assert image_file("./sub/../figure.png") == image_file("figure.png")
    assert image_file("sub/plot.PNG").endswith("/sub/plot.PNG")
    for refused in (secret, "/etc/hostname", os.path.relpath(secret, folder),
                    "../../../../../../etc/hostname", "../notebooks/figure.png",
                    "link.png", "imgs/x.png", "notes.txt", "missing.png", "sub",
                    "file:///etc/hostname", "//etc/hostname", "figure.png\0.png", ""):
        assert image_file(refused) is None, refused


def test_a_readme_style_resolver_can_be_given(tmp_path):
    """The gallery may pass its own resolver (over the repository's kept files)."""
    path = hostile_repository(tmp_path, own_secret(tmp_path))
    asked = []

    def image_file(url):
        asked.append(url)
        return None

    html = notebook_html(path, 10**7, image_file=image_file)
    assert "figure.png" in asked and base64.b64encode(PNG).decode("ascii") not in html
    assert not any(url.startswith("/") for url in asked)  # absolute URLs never asked
