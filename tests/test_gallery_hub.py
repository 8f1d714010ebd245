"""The gallery through the demo Hub: listing, search, pages, rendered notebooks, limits."""

from __future__ import annotations

import re
from urllib.parse import quote

import docker
import pytest

from tests.helpers import start_demo_hub, stop_demo_hub
from tests.test_gallery_files import build_environment_image, notebook_json
from tljh_rees.handlers.gallery import FRAME_SANDBOX

README = ("# Ocean models\n\nStart with [the intro](intro.ipynb).\n\n"
          "<script>window.parent.readme = 1</script>\n")
BIG_OUTPUT = "y" * (10 * 1024 * 1024 + 1000)  # just over the default 10 MB limit


@pytest.fixture(scope="module")
def envs(base_image):
    """Two environments of alice: a public one with many notebooks, a private one."""
    made = {}
    made["public"] = build_environment_image(base_image, {
        "README.md": README,
        "requirements.txt": "numpy\nxarray>=2023\n",
        "apt.txt": "graphviz\n",
        "intro.ipynb": notebook_json("Introduction", "print(6 * 7)", "42\n"),
        "chapters/two words.ipynb": notebook_json("Second chapter"),
        "big.ipynb": notebook_json("Big", output=BIG_OUTPUT),
        "broken.ipynb": '{"cells": [ not json',
    }, display_name="Ocean models", description="Simulate the sea",
        repo="https://example.org/ocean.git", owner="alice")
    made["private"] = build_environment_image(base_image, {
        "requirements.txt": "pandas\n",
        "secret.ipynb": notebook_json("Secret"),
    }, display_name="Private notes", repo="https://example.org/notes.git", owner="alice",
        public="false")
    yield {k: v[0] for k, v in made.items()}
    client = docker.from_env()
    for _, tag in made.values():
        client.images.remove(tag, force=True)


def names(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {e["name"] for e in response.json()["environments"]}


def test_api_lists_what_each_user_may_see(hub, envs):
    alice, bob = hub.user_token("alice"), hub.user_token("bob")
    assert envs["public"] in names(hub.rees("GET", "gallery", token=bob))
    assert envs["private"] not in names(hub.rees("GET", "gallery", token=bob))
    assert {envs["public"], envs["private"]} <= names(hub.rees("GET", "gallery", token=alice))
    assert {envs["public"], envs["private"]} <= names(hub.rees("GET", "gallery"))  # admin


def test_api_describes_an_environment(hub, envs):
    name = envs["public"]
    r = hub.rees("GET", f"gallery/{name}", token=hub.user_token("bob"))
    assert r.status_code == 200, r.text
    env = r.json()
    assert env["display_name"] == "Ocean models"
    assert env["description"] == "Simulate the sea"
    assert env["repo"] == "https://example.org/ocean.git" and len(env["commit"]) == 40
    assert env["owner"] == "alice" and env["public"] is True
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
    alice = hub.user_token("alice")

    def found(**params):
        return names(hub.rees("GET", "gallery", token=alice, params=params)) & set(envs.values())

    assert found(q="ocean SEA") == {envs["public"]}
    assert found(q="notes") == {envs["private"]}
    assert found(q="graphviz") == {envs["public"]}
    assert found(package="NumPy") == {envs["public"]}
    assert found(package="pandas") == {envs["private"]}
    assert found(repo="https://example.org/notes.git") == {envs["private"]}
    assert found(q="nothing-like-this") == set()


def test_private_environment_is_not_found_by_others(hub, envs):
    bob = hub.user_token("bob")
    name = envs["private"]
    assert hub.rees("GET", f"gallery/{name}", token=bob).status_code == 404
    assert hub.request("GET", f"/services/rees/gallery/{name}/render/secret.ipynb",
                       token=bob).status_code == 404
    r = hub.rees("GET", f"gallery/{name}/notebooks/secret.ipynb", token=hub.user_token("alice"))
    assert r.status_code == 200, r.text


def test_gallery_page_lists_cards_and_filters_without_script(hub, envs):
    bob = hub.user_token("bob")
    r = hub.request("GET", "/services/rees/gallery", token=bob)
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "Ocean models" in r.text and "Private notes" not in r.text
    assert 'href="/services/rees/gallery"' in r.text  # the nav entry
    card = re.search(rf'<div class="col gallery-card" data-name="{envs["public"]}"[^>]*>', r.text)
    assert card and " hidden" not in card.group(0)
    r = hub.request("GET", "/services/rees/gallery", token=bob, params={"package": "pandas"})
    card = re.search(rf'<div class="col gallery-card" data-name="{envs["public"]}"[^>]*>', r.text)
    assert card and " hidden" in card.group(0)


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


def test_admin_can_show_only_public_environments(envs, tmp_path):
    """``rees.gallery.show: public``: private environments stay out, even for their owner
    and admins (they remain launchable from the Environments page)."""
    proc, hub = start_demo_hub(str(tmp_path / "hub"), {"gallery": {"show": "public"}})
    try:
        for token in (None, hub.user_token("alice")):
            shown = names(hub.rees("GET", "gallery", token=token))
            assert envs["public"] in shown and envs["private"] not in shown
        assert hub.rees("GET", f"gallery/{envs['private']}").status_code == 404
    finally:
        stop_demo_hub(proc, hub)
