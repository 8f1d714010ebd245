"""The gallery's pure parts: notebook and README rendering, packages, paths, listing."""

from __future__ import annotations

import base64
import json
import os
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from tljh_rees.gallery.files import ImagePlaces, Limits, kind_of, safe_relpath
from tljh_rees.gallery.listing import GalleryEntry
from tljh_rees.gallery.packages import declared_packages, normalize
from tljh_rees.gallery.render import NotebookProblem, notebook_html, readme_html, read_notebook
from tljh_rees.gallery.store import Manifest, NotebookEntry
from tljh_rees.store.models import Environment

# A 1x1 red PNG.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
                       "BQIAX8jx0gAAAABJRU5ErkJggg==")


def write_notebook(path, nb) -> str:
    nbformat.write(nb, str(path))
    return str(path)


@pytest.fixture
def rich_notebook(tmp_path):
    (tmp_path / "figure.png").write_bytes(PNG)
    nb = new_notebook(cells=[
        new_markdown_cell("# Analysis of things\n\nSome *emphasis* and a table:\n\n"
                          "| a | b |\n|---|---|\n| 1 | 2 |\n\n![a figure](figure.png)"),
        new_code_cell("import math\nprint(math.pi)", execution_count=1, outputs=[
            new_output("stream", name="stdout", text="3.141592653589793\n"),
        ]),
        new_code_cell("show()", execution_count=2, outputs=[
            new_output("display_data", data={"image/png": base64.b64encode(PNG).decode(),
                                             "text/plain": "<Figure>"}),
            new_output("execute_result", execution_count=2,
                       data={"text/html": "<table class='df'><tr><td>42</td></tr></table>",
                             "text/plain": "42"}),
            new_output("error", ename="ValueError", evalue="bad value",
                       traceback=["ValueError: bad value"]),
        ]),
    ])
    return write_notebook(tmp_path / "analysis.ipynb", nb)


def test_notebook_renders_code_markdown_images_and_outputs(rich_notebook):
    html = notebook_html(rich_notebook, 10 * 1024**2)
    # markdown
    assert re.search(r"<h1[^>]*>Analysis of things", html)
    assert "<em>emphasis</em>" in html
    assert re.search(r"<table>\s*<thead>", html)
    # code, highlighted, with its prompt
    assert "math" in html and "pi" in html and 'class="highlight' in html
    assert "[1]:" in html
    # outputs: stream, rich HTML, an image output, an error
    assert "3.141592653589793" in html
    assert "<table class=\"df\"><tr><td>42</td></tr></table>" in html.replace("'", '"')
    assert html.count("data:image/png;base64,") >= 2  # the output and the embedded figure
    assert "ValueError" in html and "bad value" in html
    # the markdown's relative image is embedded, not left as a link to fetch
    assert 'src="figure.png"' not in html
    # a static document: no scripts from the template, links open outside the frame
    assert "<script" not in html
    assert '<base target="_blank"' in html


def test_notebook_html_keeps_untrusted_markup_for_the_sandbox_to_contain(tmp_path):
    """Rendering does not pretend to sanitize: the sandbox does the containing (see the
    browser test), so the hostile markup must still be present to make that test real."""
    nb = new_notebook(cells=[new_markdown_cell("<script>window.parent.x = 1</script>")])
    html = notebook_html(write_notebook(tmp_path / "h.ipynb", nb), 10**6)
    assert "<script>window.parent.x = 1</script>" in html


def test_invalid_json_is_named(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text('{"cells": [ this is not json')
    with pytest.raises(NotebookProblem, match="not a valid notebook: it is not JSON"):
        read_notebook(str(path), 10**6)


def test_schema_errors_are_named_with_their_place(tmp_path):
    nb = json.loads(nbformat.writes(new_notebook(cells=[new_code_cell("1")])))
    nb["cells"][0]["execution_count"] = "one"
    path = tmp_path / "schema.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(NotebookProblem) as info:
        read_notebook(str(path), 10**6)
    assert "not a valid notebook" in str(info.value)
    assert "cells/0" in str(info.value)


def test_non_utf8_and_non_notebook_json(tmp_path):
    binary = tmp_path / "binary.ipynb"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(NotebookProblem, match="not UTF-8"):
        read_notebook(str(binary), 10**6)
    other = tmp_path / "other.ipynb"
    other.write_text('{"hello": "world"}')
    with pytest.raises(NotebookProblem, match="not a valid notebook"):
        read_notebook(str(other), 10**6)


def test_too_large_says_size_and_limit(tmp_path, rich_notebook):
    size = os.path.getsize(rich_notebook)
    with pytest.raises(NotebookProblem) as info:
        read_notebook(rich_notebook, size - 1)
    message = str(info.value)
    assert "gallery shows notebooks up to" in message and "Launch" in message


# -- README -----------------------------------------------------------------------------

def test_readme_escapes_html_and_checks_links(tmp_path):
    (tmp_path / "logo.png").write_bytes(PNG)
    text = ("# Project\n\n<script>alert(1)</script>\n\n"
            "<img src=x onerror=alert(2)>\n\n"
            "[bad](javascript:alert(3)) [site](https://example.org/) "
            "[notebook](analysis.ipynb) [elsewhere](docs/guide.md) "
            "![logo](logo.png) ![missing](nope.png) ![remote](https://example.org/b.svg)")
    html = readme_html(
        text, "README.md",
        image_file=lambda p: str(tmp_path / p) if p == "logo.png" else None,
        notebook_url=lambda p: "/gallery/env/notebooks/" + p if p == "analysis.ipynb" else None)
    assert "<h1>Project</h1>" in html
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "onerror=alert(2)&gt;" in html
    assert "javascript:" not in html and "bad" in html
    assert '<a href="https://example.org/">site</a>' in html
    assert '<a href="/gallery/env/notebooks/analysis.ipynb">notebook</a>' in html
    assert "docs/guide.md" not in html and "elsewhere" in html  # unknown relative link: text
    assert 'src="data:image/png;base64,' in html
    assert "nope.png" not in html and "missing" in html
    assert 'src="https://example.org/b.svg"' in html


def test_plain_text_readme_is_preformatted():
    html = readme_html("<b>not bold</b>", "README.txt", lambda p: None, lambda p: None)
    assert html == '<pre class="rees-readme-text">&lt;b&gt;not bold&lt;/b&gt;</pre>'


# -- packages ---------------------------------------------------------------------------

def test_packages_from_each_kind_of_file():
    found = declared_packages({
        "requirements.txt": "# comment\nnumpy>=1.26\npandas[excel]==2.1 ; python_version>'3'\n"
                            "-r other.txt\n-e git+https://x/y#egg=z\nscikit_learn\n",
        "apt.txt": "graphviz\n# tools\nffmpeg\n",
        "install.R": 'install.packages(c("ggplot2", "dplyr"), repos="https://cran")\n',
        "environment.yml": "dependencies:\n  - python=3.11\n  - conda-forge::xarray>=2023\n"
                           "  - pip\n  - pip:\n    - altair==5\n",
    })
    assert found["python"] == ["altair", "numpy", "pandas", "scikit_learn"]
    assert found["conda"] == ["python", "xarray"]
    assert found["apt"] == ["graphviz", "ffmpeg"]
    assert found["r"] == ["ggplot2", "dplyr"]


def test_binder_folder_replaces_top_level_files_like_repo2docker():
    found = declared_packages({"requirements.txt": "toplevel\n",
                               "binder/requirements.txt": "inbinder\n"})
    assert found == {"python": ["inbinder"]}


def test_normalize_package_names():
    assert normalize("Scikit_Learn") == normalize("scikit-learn") == normalize("scikit.learn")


# -- files and places -------------------------------------------------------------------

def test_kinds_of_repository_files():
    assert kind_of("analysis.ipynb") == "notebook"
    assert kind_of("deep/er/Analysis.IPYNB") == "notebook"
    assert kind_of(".ipynb_checkpoints/analysis-checkpoint.ipynb") is None
    assert kind_of(".local/share/x.ipynb") is None
    assert kind_of("README.md") == "readme" and kind_of("docs/README.md") is None
    assert kind_of("requirements.txt") == "dependency"
    assert kind_of(".binder/apt.txt") == "dependency"
    assert kind_of("docs/requirements.txt") is None
    assert kind_of("figures/plot.svg") == "image"
    assert kind_of("data/table.csv") is None


def test_tar_member_names_are_confined():
    assert safe_relpath("jovyan/a/b.ipynb") == "a/b.ipynb"
    assert safe_relpath("jovyan") is None
    assert safe_relpath("jovyan/../../etc/passwd") is None
    assert safe_relpath("jovyan//abs") is None
    assert safe_relpath("jovyan/a/./b") == "a/b"


def test_image_places_prefer_repo_dir_then_workdir_then_home():
    def info(env, workdir=""):
        return {"Config": {"Env": [f"{k}={v}" for k, v in env.items()], "WorkingDir": workdir}}

    r2d = ImagePlaces.from_inspect(info({"HOME": "/home/jovyan", "REPO_DIR": "/home/jovyan"},
                                        "/home/jovyan"))
    assert r2d == ImagePlaces("/home/jovyan", "/home/jovyan")
    assert r2d.server_path("sub/nb.ipynb") == "sub/nb.ipynb"
    srv = ImagePlaces.from_inspect(info({"HOME": "/home/jovyan", "REPO_DIR": "/srv/repo"},
                                        "/srv/repo"))
    assert srv.server_path("nb.ipynb") == "nb.ipynb"
    outside = ImagePlaces.from_inspect(info({"HOME": "/home/jovyan", "REPO_DIR": "/srv/repo"}))
    assert outside.repo_dir == "/srv/repo" and outside.server_root == "/home/jovyan"
    assert outside.server_path("nb.ipynb") is None
    plain = ImagePlaces.from_inspect(info({"HOME": "/home/u"}, "/home/u/work"))
    assert plain.repo_dir == "/home/u/work"


# -- listing ----------------------------------------------------------------------------

def environment(name="env", **fields) -> Environment:
    values = {"name": name, "repo": "https://example.org/r.git", "owner": "alice",
              "display_name": "", "description": "", "public": True}
    values.update(fields)
    return Environment(**values)


def test_search_matches_words_repo_and_normalized_package():
    manifest = Manifest(image_id="sha256:0", places=ImagePlaces("/r", "/r"),
                        limits=Limits(1, 1, 1, 1), notebooks=[NotebookEntry("a.ipynb", 1, True)],
                        packages={"python": ["scikit-learn", "numpy"], "apt": ["graphviz"]})
    entry = GalleryEntry(environment("climate", display_name="Climate models",
                                     description="Ocean data"), manifest)
    assert entry.matches("climate ocean")
    assert entry.matches("NUMPY")
    assert not entry.matches("climate atmosphere")
    assert entry.matches(repo="https://example.org/r.git")
    assert not entry.matches(repo="https://example.org/other.git")
    assert entry.matches(package="Scikit_Learn") and entry.matches(package="graphviz")
    assert not entry.matches(package="pandas")
