"""Build requests from a faulty or hostile client: repository URLs and refs become
``LABEL key="value"`` lines in the Dockerfile repo2docker writes, so characters that end
or escape such a value are refused, naming the field."""

from __future__ import annotations

import pytest

from tljh_rees.builds.request import check_ref, check_repo, parse_request
from tljh_rees.catalog import Profiles, Viewer
from tljh_rees.errors import InputError

QUOTED_URLS = [
    'https://example.org/owner/repo"LABEL="1',
    "https://example.org/owner/re\\po",
    "https://example.org/owner/`id`",
    'git@example.org:owner/repo"x',
    '/srv/repos/a"b',                # local paths too, where they are allowed
    'file:///srv/repos/a`b',
    'https://user:p"w@example.org/owner/repo',
]


@pytest.mark.parametrize("repo", QUOTED_URLS)
def test_quotes_backslashes_and_backticks_in_repo_urls_are_refused(repo):
    with pytest.raises(InputError) as e:
        check_repo(repo, allow_local=True)
    assert e.value.field == "repo"
    assert "double quote, backslash or backtick" in e.value.message
    assert "expected a git repository URL" in e.value.message


@pytest.mark.parametrize("ref", ['main"', 'v1" LABEL x="y', "feature`id`", "a\\b"])
def test_quotes_and_backticks_in_refs_are_refused(ref):
    with pytest.raises(InputError) as e:
        check_ref(ref)
    assert e.value.field == "ref"


def test_the_api_body_names_the_field():
    viewer = Viewer("alice", admin=False)
    with pytest.raises(InputError) as e:
        parse_request({"repo": "https://example.org/o/r", "ref": 'main"'}, viewer,
                      Profiles([], ""), allow_local=False)
    assert e.value.field == "ref" and "double quote" in e.value.message


@pytest.mark.parametrize("repo", ["https://example.org/owner/repo.git",
                                  "https://example.org/owner/repo%22x",
                                  "git@example.org:owner/repo.git", "/srv/repos/ok"])
def test_ordinary_urls_still_pass(repo):
    assert check_repo(repo, allow_local=True)[0] == repo


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "feature/x-y", "0123abcd", "HEAD"])
def test_ordinary_refs_still_pass(ref):
    assert check_ref(ref) == ref
