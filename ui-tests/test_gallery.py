"""The gallery in Chromium: browsing and searching, and a hostile notebook kept in its box."""

from __future__ import annotations

import uuid

import docker
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from playwright.sync_api import expect

from tests.helpers import GitRepo, build_through_service
from tests.helpers import notebook_json
from tljh_rees.handlers.gallery import FRAME_SANDBOX

# Each payload tries what a script on the Hub's origin could do as the viewer: write to the
# gallery page, read cookies, call the Hub's and the service's APIs with the viewer's rights.
MARKDOWN_ATTACK = """# Hostile notebook

<script>
window.parent.pwnedMarkdown = "ran";
try { window.parent.document.title = "pwned"; } catch (e) {}
try { window.parent.stolenCookie = document.cookie; } catch (e) {}
fetch("/services/rees/api/versions?canary=markdown", {credentials: "include"});
</script>

<img src="nothing.png" onerror="window.parent.pwnedImage = 1; fetch('/hub/api/user?canary=img')">

<meta http-equiv="refresh" content="0; url=/hub/api/user?canary=refresh">
"""
OUTPUT_ATTACK = """<p id="html-output">an HTML output</p>
<script>
window.parent.pwnedOutput = 1;
document.body.dataset.ran = "1";
fetch("/hub/api/user?canary=output", {credentials: "include"})
  .then((r) => r.text()).then((t) => { window.parent.apiAnswer = t; });
</script>"""
MARKERS = "() => [window.pwnedMarkdown, window.pwnedImage, window.pwnedOutput, " \
          "window.stolenCookie, window.apiAnswer]"


def hostile_notebook() -> str:
    return nbformat.writes(new_notebook(cells=[
        new_markdown_cell(MARKDOWN_ATTACK),
        new_code_cell("display(HTML(attack))", execution_count=1, outputs=[
            new_output("display_data", data={"text/html": OUTPUT_ATTACK,
                                             "text/plain": "<HTML>"})]),
    ]))


@pytest.fixture(scope="module")
def gallery_envs(hub, base_image, tmp_path_factory):
    """Two public environments of the user 'builder', named with a word unique to the run."""
    word = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp("gallery-ui")
    builder = hub.user_token("builder")
    made = {"word": word, "hostile": f"hostile-{word}", "plain": f"plain-{word}"}
    build_through_service(hub, GitRepo(str(root / "hostile")), base_image, {
        "README.md": "# Hostile\n\nA notebook that tries to escape.\n",
        "requirements.txt": "numpy\n",
        "hostile.ipynb": hostile_notebook(),
    }, made["hostile"], token=builder, display_name="Hostile sample")
    plain = GitRepo(str(root / "plain"))
    build_through_service(hub, plain, base_image, {
        "README.md": "# Plain\n\nNothing to see.\n",
        "requirements.txt": "pandas\n",
        "analysis/report.ipynb": notebook_json("Quarterly report", "print(6 * 7)", "42\n"),
    }, made["plain"], token=builder, display_name="Plain reports",
        description="Reports about quarters")
    made["plain_repo"] = plain.url
    for key in ("hostile", "plain"):  # indexed after the build; wait for it here
        assert hub.rees("GET", f"gallery/{made[key]}").status_code == 200
    yield made
    for key in ("hostile", "plain"):
        hub.rees("DELETE", f"environments/{made[key]}?force=true")


def test_hostile_notebook_runs_no_script_on_the_hub_origin(page, hub, login, shot, gallery_envs):
    name = gallery_envs["hostile"]
    seen, frame_headers = [], {}
    page.on("request", lambda request: seen.append(request.url))
    page.on("response", lambda r: frame_headers.update(r.headers) if "/render/" in r.url else None)
    login(page, "viewer")
    page.goto(f"{hub.url}/services/rees/gallery/{name}/notebooks/hostile.ipynb")
    title = page.title()

    # the notebook is shown (so its scripts had their chance) ...
    frame = page.frame_locator("#gallery-frame")
    expect(frame.locator("h1")).to_contain_text("Hostile notebook")
    expect(frame.locator("#html-output")).to_have_text("an HTML output")
    page.wait_for_load_state("networkidle")
    shot(page, "gallery-hostile-notebook")

    # ... and none of them ran, in the frame or on the Hub's page
    assert page.evaluate(MARKERS) == [None] * 5
    assert page.title() == title != "pwned"
    assert frame.locator("body[data-ran]").count() == 0
    assert [url for url in seen if "canary" in url] == []
    sandbox = page.get_attribute("#gallery-frame", "sandbox")
    assert sandbox == FRAME_SANDBOX
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    csp = frame_headers["content-security-policy"]
    assert csp.startswith("sandbox ") and "default-src 'none'" in csp


def test_hostile_payload_is_live_without_the_sandbox(page, hub, gallery_envs):
    """The control: the same rendered document, loaded without our headers and frame, does
    run its scripts, so the test above shows the sandbox at work, not a dud payload."""
    name = gallery_envs["hostile"]
    html = hub.request("GET", f"/services/rees/gallery/{name}/render/hostile.ipynb").text
    page.set_content(html)
    markers = page.evaluate(MARKERS)
    assert markers[0] == "ran" and markers[2] == 1


def test_browse_search_and_read_a_notebook(page, hub, login, shot, gallery_envs):
    plain, hostile = gallery_envs["plain"], gallery_envs["hostile"]
    login(page, "reader")
    page.goto(f"{hub.url}/services/rees/gallery?q={gallery_envs['word']}")
    expect(page.locator("nav .nav-link.active")).to_have_text("Gallery")
    plain_card = page.locator(f'.gallery-card[data-name="{plain}"]')
    hostile_card = page.locator(f'.gallery-card[data-name="{hostile}"]')
    expect(plain_card).to_be_visible()
    expect(hostile_card).to_be_visible()
    expect(plain_card).to_contain_text("Reports about quarters")
    expect(plain_card).to_contain_text(f"{gallery_envs['plain_repo']} @")
    expect(plain_card).to_contain_text("by builder")
    expect(plain_card).to_contain_text("pandas")
    shot(page, "gallery-list")

    page.fill("#gallery-q", f"{gallery_envs['word']} quarters")  # narrows as one types
    expect(hostile_card).to_be_hidden()
    expect(plain_card).to_be_visible()
    page.fill("#gallery-q", gallery_envs["word"])
    page.select_option("#gallery-package", "numpy")  # searches every environment
    page.wait_for_url("**package=numpy**")
    expect(plain_card).to_be_hidden()
    expect(hostile_card).to_be_visible()
    page.goto(f"{hub.url}/services/rees/gallery?q={gallery_envs['word']}")

    plain_card.get_by_role("link", name="Browse").click()
    expect(page.locator("#gallery-readme h1")).to_have_text("Plain")
    page.get_by_role("link", name="analysis/report.ipynb", exact=True).click()
    frame = page.frame_locator("#gallery-frame")
    expect(frame.locator("h1")).to_contain_text("Quarterly report")
    expect(frame.locator(".jp-OutputArea-output")).to_contain_text("42")
    launch = page.get_by_role("link", name="Launch this notebook")
    assert launch.get_attribute("href") == (
        f"/services/rees/launch/{plain}?urlpath=lab%2Ftree%2Fanalysis%2Freport.ipynb")
    shot(page, "gallery-notebook")


def test_launch_from_the_gallery_opens_the_notebook_with_storage(page, hub, login, shot,
                                                                 gallery_envs):
    """Launch on a notebook starts a named server from its environment, with the user's
    persistent storage, and JupyterLab opens that notebook."""
    name, user = gallery_envs["plain"], "launcher"
    token = hub.user_token(user)
    login(page, user)
    page.goto(f"{hub.url}/services/rees/gallery/{name}/notebooks/analysis/report.ipynb")
    try:
        page.get_by_role("link", name="Launch this notebook").click()
        page.click("#launch-start")  # the launch page: the user's own click starts it
        page.wait_for_url(f"**/user/{user}/{name}/lab/tree/analysis/report.ipynb",
                          timeout=180_000)
        expect(page.locator(".jp-NotebookPanel .jp-Cell").first).to_contain_text(
            "Quarterly report", timeout=90_000)
        expect(page.locator(".jp-NotebookPanel .jp-OutputArea-output").first).to_contain_text(
            "42")
        shot(page, "gallery-launched-notebook")
        server = hub.request("GET", f"/hub/api/users/{user}", token=token).json()["servers"][name]
        assert server["user_options"]["environment"] == name
        storage = hub.request("GET", f"/user/{user}/{name}/api/contents/work", token=token)
        assert storage.status_code == 200 and storage.json()["type"] == "directory"
        mounts = docker.from_env().containers.list(
            filters={"label": f"org.tljh-rees.server-environment={name}",
                     "name": f"{hub.container_prefix()}{user}"})[0].attrs["Mounts"]
        assert any(m["Type"] == "volume" and m["Destination"] == "/home/jovyan/work"
                   for m in mounts)
    finally:
        hub.request("DELETE", f"/hub/api/users/{user}/servers/{name}", token=token,
                    json={"remove": True})
