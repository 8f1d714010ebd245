"""A Binder link in Chromium: from /v2/… through the live log to JupyterLab with the
requested notebook open."""

from __future__ import annotations

import json
import re
import urllib.parse
import uuid

from playwright.sync_api import expect

from tests.helpers import GitRepo, dockerfile_repo

START_TIMEOUT = 180_000


def test_a_binder_link_opens_the_notebook_in_jupyterlab(page, hub, login, shot, git_host,
                                                        base_image, tmp_path):
    run = uuid.uuid4().hex[:8]
    repo = GitRepo(str(tmp_path / "repo"))
    dockerfile_repo(repo, base_image, marker=f"v2 page {run}")
    repo.commit({"analysis.ipynb": json.dumps({
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": [f"# Linked {run}"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5})})
    git_host.publish(f"v2-{run}/demo", repo.path)
    user = "builder"
    login(page, user)
    page.goto(f"{hub.service_url}/v2/gh/v2-{run}/demo/HEAD?labpath=analysis.ipynb")
    expect(page.locator("#binder-log")).to_contain_text("checked out", timeout=START_TIMEOUT)
    shot(page, "binder-link-building")
    page.wait_for_url(re.compile(rf"/user/{user}/binder-gh-[a-z0-9-]+/doc/tree/"
                                 r"analysis\.ipynb"), timeout=START_TIMEOUT)
    expect(page.locator(".jp-NotebookPanel")).to_contain_text(f"Linked {run}",
                                                               timeout=START_TIMEOUT)
    shot(page, "binder-link-notebook")
    name = page.url.split(f"/user/{user}/")[1].split("/")[0]
    hub.request("DELETE", f"/hub/api/users/{user}/servers/{name}", json={"remove": True})


def test_a_bad_link_says_what_is_wrong_on_the_page(page, hub, login):
    login(page, "reader")
    page.goto(f"{hub.service_url}/v2/gh/only-two/parts")
    expect(page.locator("#binder-error")).to_contain_text("gh/<user>/<repo>/<ref>")
    expect(page.locator("#binder-phase [data-phase=failed]")).to_be_visible()


def test_share_dialog_gives_links_and_badges(page, hub, login, shot, git_host, base_image,
                                             tmp_path):
    from tests.helpers import wait_build

    run = uuid.uuid4().hex[:8]
    repo = GitRepo(str(tmp_path / "shared"))
    dockerfile_repo(repo, base_image, marker=f"shared {run}")
    url = git_host.publish(f"share-{run}/demo", repo.path)
    name = f"shared-{run}"
    build = wait_build(hub, hub.rees("POST", "builds", json={"repo": url, "name": name})
                       .json()["id"])
    login(page, "reader")
    page.goto(f"{hub.service_url}/")
    page.fill("#environments-q", run)
    row = page.locator(f'#environments-body tr[data-env="{name}"]')
    row.get_by_role("button", name=re.compile("More")).click()
    row.get_by_role("button", name="Share…").click()
    page.fill("#share-file", "notebooks/a b.ipynb")
    base = f"{hub.service_url}/"
    expect(page.locator("#share-link")).to_have_value(
        f"{base}launch/{name}?urlpath=lab%2Ftree%2Fnotebooks%2Fa+b.ipynb")
    binder = (f"{base}v2/git/{urllib.parse.quote(url, safe='')}/{build['commit']}"
              "?labpath=notebooks%2Fa+b.ipynb")
    expect(page.locator("#share-binder")).to_have_value(binder)
    expect(page.locator("#share-markdown")).to_have_value(
        f"[![Binder]({base}badge_logo.svg)]({binder})")
    expect(page.locator("#share-rst")).to_have_value(
        f".. image:: {base}badge_logo.svg\n :target: {binder}")
    page.wait_for_function("document.getElementById('share-badge').naturalWidth > 0")
    shot(page, "share-dialog")
