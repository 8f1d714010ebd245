"""A build request and its validation: every rule names the field it concerns."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..catalog.access import Viewer
from ..catalog.catalog import DESCRIPTION_MAX, DISPLAY_NAME_MAX, check_public, check_text
from ..catalog.profiles import Profiles
from ..errors import InputError
from .credentials import Credentials
from .sources import GitSource, Source

SCHEMES = ("https", "http", "git", "ssh")
LOCAL_SCHEMES = ("file",)
# Docker image names: lowercase, digits, and single separators; we also use it as a tag part.
NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
NAME_MAX = 63
# Environments made from Binder links are named so (see binder/links.py); no request may
# take such a name first. (Names made from repositories never hold a '.'.)
SITE_PREFIX = "binder."
REF_MAX = 255
# repo2docker writes the URL and ref into its Dockerfile as LABEL key="value" lines, where
# these would end the value or escape out of it.
LABEL_UNSAFE = ('"', "\\", "`")
SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$")  # git@host:owner/repo


@dataclass
class BuildRequest:
    """A validated request to build ``ref`` of ``source`` into the environment ``name``.

    ``profile``, ``public``, ``display_name`` and ``description`` apply to a new
    environment, or change an existing one; None keeps what it has (so a rebuild never
    makes a private environment public by leaving a field out).
    """

    source: Source
    ref: str
    name: str
    requester: Viewer
    profile: str | None = None
    public: bool | None = None
    display_name: str | None = None
    description: str | None = None
    spec_name: str | None = None
    spec_version: str | None = None

    @property
    def repo(self) -> str:
        return self.source.repo


def _strip_userinfo(repo: str) -> tuple[str, Credentials | None]:
    """Move ``user:token@`` (or a lone ``token@``) out of an http(s) URL into credentials."""
    parts = urllib.parse.urlsplit(repo)
    if parts.scheme in ("http", "https") and (parts.username or parts.password):
        netloc = parts.netloc.rpartition("@")[2]  # host[:port] as written ([v6] stays)
        clean = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        username = urllib.parse.unquote(parts.username or "")
        password = urllib.parse.unquote(parts.password or "")
        if not password:
            # https://TOKEN@host/... is how forges hand out tokens (nobody can answer a
            # password prompt here), so the lone user part is the secret: it becomes the
            # password, redacted like one and never put back in a URL. GitHub and GitLab
            # check a token given as the password and accept any non-empty user name
            # (x-access-token, oauth2, ...), so "git" will do.
            username, password = "git", username
        return clean, Credentials(username or "git", password)
    return repo, None


def check_repo(repo, allow_local: bool) -> tuple[str, Credentials | None]:
    if not isinstance(repo, str) or not repo.strip():
        raise InputError("repo", "expected a git repository URL like "
                                 "https://github.com/owner/name")
    repo = repo.strip()
    if any(ord(c) < 32 or c.isspace() for c in repo) or len(repo) > 2048:
        raise InputError("repo", "the URL contains spaces or control characters")
    if any(c in repo for c in LABEL_UNSAFE):
        raise InputError("repo", "the URL contains a double quote, backslash or backtick; "
                                 "expected a git repository URL (percent-encode such "
                                 "characters, e.g. %22 for a double quote)")
    if repo.startswith("-"):
        raise InputError("repo", "a repository URL cannot start with '-'")
    if SCP_LIKE.match(repo):
        return repo, None
    if repo.startswith("/"):
        if allow_local:
            return repo, None
        raise InputError("repo", "local paths are not allowed here (an admin can allow them "
                                 "with rees.builds.allow_local_repos); expected an https:// URL")
    parts = urllib.parse.urlsplit(repo)
    if parts.scheme in LOCAL_SCHEMES:
        if allow_local:
            return repo, None
        raise InputError("repo", "file:// URLs are not allowed here (an admin can allow them "
                                 "with rees.builds.allow_local_repos); expected an https:// URL")
    if parts.scheme not in SCHEMES:
        raise InputError("repo", f"unsupported URL scheme {parts.scheme + '://' if parts.scheme else ''!r}; "
                                 f"expected one of {', '.join(s + '://' for s in SCHEMES)}")
    if not parts.hostname:
        raise InputError("repo", "the URL has no host; expected e.g. https://github.com/owner/name")
    return _strip_userinfo(repo)


def check_ref(ref) -> str:
    if ref is None or ref == "":
        return "HEAD"
    if not isinstance(ref, str):
        raise InputError("ref", "expected a branch, tag or commit as text")
    if len(ref) > REF_MAX:
        raise InputError("ref", f"longer than {REF_MAX} characters")
    if ref.startswith("-"):
        raise InputError("ref", "a ref cannot start with '-' (it would read as an option)")
    if any(ord(c) < 32 or ord(c) == 127 or c in " ~^:?*[\\" for c in ref) or ".." in ref:
        raise InputError("ref", "contains characters git does not allow in a ref "
                                "(spaces, control characters, ~ ^ : ? * [ \\ or ..)")
    if any(c in ref for c in LABEL_UNSAFE):
        raise InputError("ref", "contains a double quote or backtick; expected a branch, tag "
                                "or commit name without them")
    return ref


def default_name(repo: str) -> str:
    """An environment name derived from the repository's last path parts."""
    path = urllib.parse.urlsplit(repo).path if "://" in repo else repo.split(":", 1)[-1]
    parts = [p for p in path.rstrip("/").split("/") if p][-2:]
    name = "-".join(parts).lower()
    name = re.sub(r"\.git$", "", name)
    name = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
    return name[:NAME_MAX].strip("-") or "environment"


def check_name(name, repo: str) -> str:
    if name in (None, ""):
        return default_name(repo)
    if not isinstance(name, str) or len(name) > NAME_MAX or not NAME_RE.match(name):
        raise InputError("name", f"expected lowercase letters, digits and single '.', '_' or "
                                 f"'-' between them, at most {NAME_MAX} characters "
                                 f"(it becomes an image name); got {name!r}")
    if name.startswith(SITE_PREFIX):
        raise InputError("name", f"names starting with {SITE_PREFIX!r} are kept for "
                                 "environments made from Binder links; choose another")
    return name


def check_credentials(value) -> Credentials | None:
    if value in (None, {}):
        return None
    if not isinstance(value, dict) or set(value) - {"username", "password"}:
        raise InputError("credentials", "expected {\"username\": ..., \"password\": ...}")
    username, password = value.get("username", ""), value.get("password", "")
    if not isinstance(username, str) or not isinstance(password, str):
        raise InputError("credentials", "username and password must be text")
    if any(ord(c) < 32 for c in username + password):
        raise InputError("credentials", "username and password cannot contain control characters")
    if not password:
        raise InputError("credentials", "a password or access token is required")
    return Credentials(username or "git", password)


def environment_options(data: dict, profiles: Profiles) -> dict:
    """The environment fields a build request may set (None: keep or default)."""
    profile = data.get("profile")
    return {
        "profile": profiles.check(profile) if profile is not None else None,
        "public": check_public(data.get("public")),
        "display_name": check_text(data, "display_name", DISPLAY_NAME_MAX),
        "description": check_text(data, "description", DESCRIPTION_MAX),
    }


def parse_request(data: dict, requester: Viewer, profiles: Profiles,
                  allow_local: bool) -> BuildRequest:
    """Validate the API's JSON body (unknown fields are refused before this)."""
    repo, url_credentials = check_repo(data.get("repo"), allow_local)
    credentials = check_credentials(data.get("credentials")) or url_credentials
    return BuildRequest(
        source=GitSource(repo, credentials, allow_local=allow_local),
        ref=check_ref(data.get("ref")), name=check_name(data.get("name"), repo),
        requester=requester, **environment_options(data, profiles),
    )
