"""Binder links without a Hub: environment names, landing paths, spec forms."""

from __future__ import annotations

import pytest

from tljh_rees.binder.links import environment_name
from tljh_rees.launcher import landing_path
from tljh_rees.binder.providers import GistProvider, GitHubProvider, GitLabProvider, \
    GitProvider, Resolved
from tljh_rees.builds.request import NAME_MAX, NAME_RE, check_name, default_name
from tljh_rees.errors import InputError


def resolved(provider="gh", slug="org-repo", version="a" * 40) -> Resolved:
    return Resolved(provider, "spec", "spec", "https://example.org/r", "", version, slug,
                    source=None)


def test_names_are_image_names_that_tell_repository_and_version_apart():
    commit = resolved(version="0123456789ab" + "c" * 28)
    assert environment_name(commit) == "binder.gh-org-repo-0123456789ab"
    # archive versions of one record share their start: the name hashes the whole
    v1, v2 = (environment_name(resolved("hydroshare", "hs", f"{'f' * 32}.v{n}"))
              for n in (1700000000, 1700000001))
    assert v1 != v2
    long_a = environment_name(resolved(slug="x" * 80 + "a"))
    long_b = environment_name(resolved(slug="x" * 80 + "b"))
    for name in (v1, long_a, long_b):
        assert len(name) <= NAME_MAX and NAME_RE.match(name), name
    assert long_a != long_b  # cut to length, told apart by a hash of the repository


def test_link_names_are_kept_for_links():
    with pytest.raises(InputError) as e:
        check_name("binder.gh-someone-else", "https://example.org/r")
    assert e.value.field == "name" and "Binder links" in e.value.message
    # repositories named like mybinder's examples keep their natural names
    assert default_name("https://github.com/binder-examples/requirements") == \
        "binder-examples-requirements"


@pytest.mark.parametrize("query,path", [
    ({}, ""),
    ({"urlpath": "/rstudio?a=1"}, "rstudio?a=1"),
    ({"labpath": "notebooks/a b.ipynb"}, "doc/tree/notebooks/a%20b.ipynb"),
    ({"filepath": "data/x.csv/"}, "tree/data/x.csv"),
    ({"urlpath": "lab", "filepath": "f.ipynb"}, "tree/f.ipynb"),  # filepath over urlpath
    ({"filepath": "f.ipynb", "labpath": "l.ipynb"}, "doc/tree/l.ipynb"),  # labpath first
])
def test_landing_paths_as_binderhubs_clients_map_them(query, path):
    assert landing_path(**query) == path


@pytest.mark.parametrize("bad", ["https://evil.example/x", "a\\b", "a\nb",
                                 "javascript:alert(1)", "http:evil.example", "/JavaScript:x"])
def test_landing_paths_stay_in_the_server(bad):
    with pytest.raises(InputError):
        landing_path(urlpath=bad)


@pytest.mark.parametrize("provider,spec,expected", [
    (GitHubProvider, "org/repo", "gh/<user>/<repo>/<ref>"),
    (GitHubProvider, "org//HEAD", "gh/<user>/<repo>/<ref>"),
    (GistProvider, "onlyuser", "gist/<user>/<gist id>"),
    (GitLabProvider, "project/HEAD", "group%2Fproject"),
    (GitProvider, "https%3A%2F%2Fexample.org%2Fr", "git/<repository URL"),
])
async def test_malformed_specs_say_what_a_link_looks_like(provider, spec, expected):
    with pytest.raises(InputError) as e:
        await provider().resolve(spec)
    assert e.value.field == "spec" and expected in e.value.message


async def test_git_links_refuse_what_builds_refuse():
    for url in ("file%3A%2F%2F%2Fetc", "%2Fetc%2Fpasswd", "ftp%3A%2F%2Fx"):
        with pytest.raises(InputError) as e:
            await GitProvider().resolve(f"{url}/HEAD")
        assert e.value.field == "spec"


def test_server_names_are_ones_jupyterhub_6_takes():
    """JupyterHub 6 takes only 'safe slugs' as server names (≤30 characters of a-z, 0-9
    and single hyphens, from a letter)."""
    from tljh_rees.launcher import SERVER_NAME_RE, server_name_for

    assert server_name_for("plain-name") == "plain-name"
    names = {server_name_for(n) for n in ("binder.gh-org-repo-0123456789ab", "2024_data.v2",
                                          "x" * 63, "x" * 62 + "y", "a--b")}
    assert len(names) == 5
    for name in names:
        assert SERVER_NAME_RE.match(name) and len(name) <= 30, name
