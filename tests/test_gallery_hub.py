"""The gallery through the demo Hub: listing, search, pages, rendered notebooks, limits."""

from __future__ import annotations

import os
import re
import uuid
from urllib.parse import quote

import pytest

from tests.helpers import (GitRepo, build_through_service, remove_built_images,
                           start_demo_hub, stop_demo_hub)
from tests.helpers import notebook_json
from tljh_rees.handlers.gallery import FRAME_SANDBOX

README = ("# Ocean models\n\nStart with [the intro](intro.ipynb).\n\n"
          "<script>window.parent.readme = 1</script>\n")
BIG_OUTPUT = "y" * (10 * 1024 * 1024 + 1000)  # just over the default 10 MB limit


PUBLIC_FILES = {
    "README.md": README,
    "requirements.txt": "numpy\nxarray>=2023\n",
    "apt.txt": "graphviz\n",
    "intro.ipynb": notebook_json("Introduction", "print(6 * 7)", "42\n"),
    "chapters/two words.ipynb": notebook_json("Second chapter"),
    "big.ipynb": notebook_json("Big", output=BIG_OUTPUT),
    "broken.ipynb": '{"cells": [ not json',
}
PRIVATE_FILES = {"requirements.txt": "pandas\n", "secret.ipynb": notebook_json("Secret")}


def make_envs(hub, base_image, directory) -> dict:
    """Two environments of the user 'builder': a public one with many notebooks, and a
    private one; their names share a word unique to this run (``envs["word"]``)."""
    word = uuid.uuid4().hex[:8]
    builder = hub.user_token("builder")
    made = {"word": word}
    public = GitRepo(os.path.join(directory, "ocean"))
    made["public"] = f"ocean-{word}"
    build_through_service(hub, public, base_image, PUBLIC_FILES, made["public"],
                          token=builder, display_name="Ocean models",
                          description="Simulate the sea")
    private = GitRepo(os.path.join(directory, "notes"))
    made["private"] = f"notes-{word}"
    build_through_service(hub, private, base_image, PRIVATE_FILES, made["private"],
                          token=builder, display_name="Private notes", public=False)
    made["repos"] = {"public": public.url, "private": private.url}
    # indexed after the build; wait for it here (a gallery of public ones hides the other)
    assert hub.rees("GET", f"gallery/{made['public']}").status_code == 200
    assert hub.rees("GET", f"gallery/{made['private']}").status_code in (200, 404)
    return made


@pytest.fixture(scope="module")
def envs(hub, base_image, tmp_path_factory):
    made = make_envs(hub, base_image, str(tmp_path_factory.mktemp("gallery-repos")))
    yield made
    for key in ("public", "private"):
        hub.rees("DELETE", f"environments/{made[key]}?force=true")


def names(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {e["name"] for e in response.json()["environments"]}


def listed(hub, envs, token=None, **params) -> set[str]:
    """The gallery's answer among this run's environments (the session Hub has others)."""
    params.setdefault("q", envs["word"])
    return names(hub.rees("GET", "gallery", token=token, params=params))


def test_api_lists_what_each_user_may_see(hub, envs):
    alice, bob = hub.user_token("builder"), hub.user_token("bob")
    assert listed(hub, envs, bob) == {envs["public"]}
    assert listed(hub, envs, alice) == {envs["public"], envs["private"]}
    assert listed(hub, envs) == {envs["public"], envs["private"]}  # admin
    page = hub.rees("GET", "gallery", token=alice, params={"q": envs["word"], "limit": 1})
    assert page.json()["total"] == 2 and len(page.json()["environments"]) == 1


def test_api_describes_an_environment(hub, envs):
    name = envs["public"]
    r = hub.rees("GET", f"gallery/{name}", token=hub.user_token("bob"))
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["display_name"] == "Ocean models"
    assert env["description"] == "Simulate the sea"
    assert env["repo"] == envs["repos"]["public"] and len(env["commit"]) == 40
    assert env["owner"] == "builder" and env["public"] is True
    assert env["packages"] == {"python": ["numpy", "xarray"], "apt": ["graphviz"]}
    notebooks = {n["path"]: n for n in env["notebooks"]}
    assert list(notebooks) == ["big.ipynb", "broken.ipynb", "intro.ipynb",
                               "chapters/two words.ipynb"]
    assert notebooks["big.ipynb"]["problem"] == "too large"
    assert notebooks["chapters/two words.ipynb"]["launch_url"] == (
        f"/services/rees/launch/{name}?urlpath=lab%2Ftree%2Fchapters%2Ftwo%2520words.ipynb")
    assert env["launch_url"] == f"/services/rees/launch/{name}"
    # the README: markdown rendered, its raw HTML escaped, its notebook link to the gallery
    assert "<h1>Ocean models</h1>" in env["readme_html"]
    assert "<script" not in env["readme_html"]
    assert f'href="/services/rees/gallery/{name}/notebooks/intro.ipynb"' in env["readme_html"]


def test_search_by_name_repo_and_package(hub, envs):
    alice = hub.user_token("builder")

    def found(**params):
        return names(hub.rees("GET", "gallery", token=alice, params=params)) & \
            {envs["public"], envs["private"]}

    assert found(q="ocean SEA") == {envs["public"]}
    assert found(q="notes") == {envs["private"]}
    assert found(q="graphviz") == {envs["public"]}
    assert found(package="NumPy") == {envs["public"]}
    assert found(package="pandas") == {envs["private"]}
    assert found(repo=envs["repos"]["private"]) == {envs["private"]}
    assert found(q="nothing-like-this") == set()


def test_private_environment_is_not_found_by_others(hub, envs):
    bob = hub.user_token("bob")
    name = envs["private"]
    assert hub.rees("GET", f"gallery/{name}", token=bob).status_code == 404
    assert hub.request("GET", f"/services/rees/gallery/{name}/render/secret.ipynb",
                       token=bob).status_code == 404
    r = hub.rees("GET", f"gallery/{name}/notebooks/secret.ipynb",
                 token=hub.user_token("builder"))
    assert r.status_code == 200, r.text


def test_gallery_page_lists_cards_and_filters_without_script(hub, envs):
    bob = hub.user_token("bob")
    r = hub.request("GET", "/services/rees/gallery", token=bob, params={"q": envs["word"]})
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "Ocean models" in r.text and "Private notes" not in r.text
    assert 'href="/services/rees/gallery"' in r.text  # the nav entry
    card = f'<div class="col gallery-card" data-name="{envs["public"]}"'
    assert card in r.text
    r = hub.request("GET", "/services/rees/gallery", token=bob,
                    params={"q": envs["word"], "package": "pandas"})
    assert card not in r.text and 'id="gallery-none"' in r.text


def test_environment_page_shows_readme_notebooks_and_launch_links(hub, envs):
    name = envs["public"]
    r = hub.request("GET", f"/services/rees/gallery/{name}", token=hub.user_token("bob"))
    assert r.status_code == 200
    assert "<h1>Ocean models</h1>" in r.text
    assert "&lt;script&gt;window.parent.readme" in r.text
    assert f'href="/services/rees/gallery/{name}/notebooks/chapters/two%20words.ipynb"' in r.text
    assert f'href="/services/rees/launch/{name}?urlpath=lab%2Ftree%2Fintro.ipynb"' in r.text
    assert "numpy" in r.text and "graphviz" in r.text


def test_notebook_is_served_sandboxed(hub, envs):
    name, bob = envs["public"], hub.user_token("bob")
    page = hub.request("GET", f"/services/rees/gallery/{name}/notebooks/intro.ipynb", token=bob)
    assert page.status_code == 200
    frame = re.search(r"<iframe[^>]*>", page.text).group(0)
    assert f'sandbox="{FRAME_SANDBOX}"' in frame
    assert "allow-same-origin" not in frame and "allow-scripts" not in frame
    assert f'src="/services/rees/gallery/{name}/render/intro.ipynb"' in frame

    r = hub.request("GET", f"/services/rees/gallery/{name}/render/intro.ipynb", token=bob)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    csp = r.headers["Content-Security-Policy"]
    sandbox = next(d for d in csp.split(";") if d.strip().startswith("sandbox"))
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Introduction" in r.text and "42" in r.text


def test_large_and_invalid_notebooks_get_a_clear_message(hub, envs):
    name, bob = envs["public"], hub.user_token("bob")
    r = hub.rees("GET", f"gallery/{name}/notebooks/big.ipynb", token=bob)
    assert r.status_code == 422
    assert re.fullmatch(r"This notebook is 10\.0 MB; the gallery shows notebooks up to "
                        r"10\.0 MB\. Launch the environment to open it\.", r.json()["error"])
    r = hub.rees("GET", f"gallery/{name}/notebooks/broken.ipynb", token=bob)
    assert r.status_code == 422
    assert r.json()["error"] == "This file is not a valid notebook: it is not JSON."

    page = hub.request("GET", f"/services/rees/gallery/{name}/notebooks/broken.ipynb", token=bob)
    assert page.status_code == 200
    assert 'id="gallery-problem"' in page.text and "it is not JSON" in page.text
    assert "<iframe" not in page.text
    render = hub.request("GET", f"/services/rees/gallery/{name}/render/big.ipynb", token=bob)
    assert render.status_code == 422 and "Launch the environment" in render.text


def test_unknown_environment_and_notebook(hub, envs):
    bob = hub.user_token("bob")
    r = hub.rees("GET", "gallery/no-such-env", token=bob)
    assert r.status_code == 404 and "no environment 'no-such-env'" in r.json()["error"]
    for path in ("README.md", quote("../README.md", safe="")):
        r = hub.rees("GET", f"gallery/{envs['public']}/notebooks/{path}", token=bob)
        assert r.status_code == 404 and "has no notebook" in r.json()["error"]


def test_admin_can_show_only_public_environments(base_image, tmp_path):
    """``rees.gallery.show: public``: private environments stay out, even for their owner
    and admins (they remain launchable from the Environments page)."""
    proc, hub = start_demo_hub(str(tmp_path / "hub"), {"gallery": {"show": "public"},
                                                        "builders": ["builder"]})
    try:
        envs = make_envs(hub, base_image, str(tmp_path / "repos"))
        for token in (None, hub.user_token("builder")):
            assert listed(hub, envs, token) == {envs["public"]}
        assert hub.rees("GET", f"gallery/{envs['private']}").status_code == 404
    finally:
        stop_demo_hub(proc, hub)
        remove_built_images(os.path.join(str(tmp_path / "hub"), "rees", "rees.sqlite"))
