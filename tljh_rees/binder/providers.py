"""Repository providers with BinderHub's names and spec formats.

A provider turns the spec of a Binder link (``gh/<user>/<repo>/<ref>`` without its prefix)
into a :class:`Resolved`: the immutable version it names (a commit, a record version),
the :class:`~tljh_rees.builds.sources.Source` that fetches exactly that version, and the
values BinderHub's clients expect (``repo_url``, ``binder_ref_url``, the persistent spec).
Providers are traitlets configurables, so admins point them at their own GitLab or
Dataverse (``c.GitLabProvider.base_url``); ``rees.binder.providers`` picks which are on.

Git providers resolve refs with ``git ls-remote`` against the host itself, so they need
no API token and work with any git server; archive providers (Zenodo, Figshare, …) are
in ``archives.py``.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from ..builds.request import check_ref, check_repo
from ..builds.sources import GitSource, Source
from ..errors import InputError

SHA1_LENGTH = 40


@dataclass(frozen=True)
class Resolved:
    provider: str  # the provider's id, e.g. "gh"
    spec: str  # as the link gave it (still escaped)
    resolved_spec: str  # the same with the immutable version (binder_persistent_request)
    repo_url: str  # what is built
    ref_url: str  # a page showing exactly that version (binder_ref_url)
    version: str  # the immutable version: a commit, a record version
    slug: str  # names the environment (with the version)
    source: Source  # fetches exactly that version


class RepoProvider(LoggingConfigurable):
    """One kind of Binder link. Subclasses set ``id`` and the display texts and
    implement :meth:`resolve`."""

    id = ""
    display_name = ""
    label = ""
    placeholder = ""
    url_encode = False
    has_ref = True
    validate_regex = ""

    def display_config(self) -> dict:
        """This provider as BinderHub's ``/api/repoproviders`` lists it."""
        ref = {"enabled": True, "default": "HEAD"} if self.has_ref else {"enabled": False}
        return {"displayName": self.display_name, "id": self.id,
                "spec": {"validateRegex": self.validate_regex},
                "repo": {"label": self.label, "placeholder": self.placeholder,
                         "urlEncode": self.url_encode},
                "ref": ref}

    async def resolve(self, spec: str) -> Resolved:
        """The immutable version ``spec`` names; InputError (field ``spec``) for a spec
        of the wrong form or a version that does not exist."""
        raise NotImplementedError

    def spec_error(self, spec: str, expected: str) -> InputError:
        return InputError("spec", f"{self.display_name} links look like {expected}; "
                                  f"got {spec!r}")


async def resolve_git(repo_url: str, ref: str) -> tuple[GitSource, str]:
    """A source for ``repo_url`` and the commit ``ref`` names there."""
    try:
        repo_url, _ = check_repo(repo_url, allow_local=False)
        ref = check_ref(ref)
    except InputError as e:
        raise InputError("spec", e.message) from None
    source = GitSource(repo_url)
    if len(ref) == SHA1_LENGTH and all(c in "0123456789abcdef" for c in ref):
        return source, ref
    try:
        commit = await source.resolve(ref)
    except InputError as e:
        raise InputError("spec", e.message, status=e.status) from None
    if not commit:
        raise InputError("spec", f"cannot resolve {ref!r} in {repo_url}; give a branch, a "
                                 "tag or a full commit", status=422)
    return source, commit


class GitHubProvider(RepoProvider):
    id = "gh"
    display_name = "GitHub"
    label = "GitHub repository name or URL"
    placeholder = "example: binder-examples/requirements"
    validate_regex = "[^/]+/[^/]+/.+"
    base_url = Unicode("https://github.com", config=True,
                       help="Where GitHub (or a GitHub Enterprise) serves repositories.")

    async def resolve(self, spec: str) -> Resolved:
        parts = spec.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise self.spec_error(spec, "gh/<user>/<repo>/<ref> (e.g. HEAD, a branch, a "
                                        "tag or a commit)")
        user, repo, ref = parts[0], parts[1].removesuffix(".git"), parts[2]
        base = self.base_url.rstrip("/")
        source, commit = await resolve_git(f"{base}/{user}/{repo}", ref)
        return Resolved(self.id, spec, f"{user}/{repo}/{commit}", source.repo,
                        f"{base}/{user}/{repo}/tree/{commit}", commit, f"{user}-{repo}",
                        source)


class GistProvider(RepoProvider):
    id = "gist"
    display_name = "GitHub Gist"
    label = "Gist ID (username/gistId) or URL"
    validate_regex = "[^/]+/[^/]+(/[^/]+)?"
    base_url = Unicode("https://gist.github.com", config=True,
                       help="Where gists are served.")

    async def resolve(self, spec: str) -> Resolved:
        parts = spec.split("/")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            raise self.spec_error(spec, "gist/<user>/<gist id>[/<ref>]")
        user, gist = parts[0], parts[1]
        ref = parts[2] if len(parts) == 3 and parts[2] not in ("", "master", "main") \
            else "HEAD"
        base = self.base_url.rstrip("/")
        source, commit = await resolve_git(f"{base}/{user}/{gist}.git", ref)
        return Resolved(self.id, spec, f"{user}/{gist}/{commit}", source.repo,
                        f"{base}/{user}/{gist}/{commit}", commit, gist, source)


class GitLabProvider(RepoProvider):
    id = "gl"
    display_name = "GitLab"
    label = "GitLab repository name or URL"
    placeholder = "example: mosaik/examples/mosaik-tutorials-on-binder"
    url_encode = True
    validate_regex = "[^/]+/.+"
    base_url = Unicode("https://gitlab.com", config=True,
                       help="Where the GitLab serves repositories (your own, for example).")

    async def resolve(self, spec: str) -> Resolved:
        quoted, _, ref = spec.partition("/")
        namespace, ref = urllib.parse.unquote(quoted), urllib.parse.unquote(ref)
        if not namespace or not ref or "/" not in namespace:
            raise self.spec_error(spec, "gl/<group%2Fproject, URL-escaped>/<ref>")
        base = self.base_url.rstrip("/")
        source, commit = await resolve_git(f"{base}/{namespace}.git", ref)
        slug = "-".join(p.replace("-", "_-") for p in namespace.split("/"))
        return Resolved(self.id, spec, f"{quoted}/{commit}", source.repo,
                        f"{base}/{namespace}/tree/{commit}", commit, slug, source)


class GitProvider(RepoProvider):
    id = "git"
    display_name = "Git repository"
    label = "Arbitrary git repository URL"
    placeholder = "example: http://git.example.com/repo"
    url_encode = True
    validate_regex = "[^/]+/.+"

    async def resolve(self, spec: str) -> Resolved:
        quoted, _, ref = spec.partition("/")
        repo, ref = urllib.parse.unquote(quoted), urllib.parse.unquote(ref)
        if not repo or not ref:
            raise self.spec_error(spec, "git/<repository URL, URL-escaped>/<ref>")
        source, commit = await resolve_git(repo, ref)
        return Resolved(self.id, spec, f"{quoted}/{commit}", source.repo, source.repo, commit,
                        source.repo, source)


GIT_PROVIDERS = (GitHubProvider, GistProvider, GitProvider, GitLabProvider)  # BinderHub's order
