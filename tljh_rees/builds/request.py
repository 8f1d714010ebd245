"""A build request and its validation: every rule names the field it concerns."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from ..errors import InputError

SCHEMES = ("https", "http", "git", "ssh")
LOCAL_SCHEMES = ("file",)
# Docker image names: lowercase, digits, and single separators; we also use it as a tag part.
NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
NAME_MAX = 63
REF_MAX = 255
SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$")  # git@host:owner/repo


@dataclass
class Credentials:
    """Username and token for a private repository: used for the clone, then dropped."""

    username: str
    password: str = field(repr=False)

    def secrets(self) -> list[str]:
        """The strings that must never be shown, in every form they could appear in."""
        forms = set()
        for value in (self.password, self.username if self.password else ""):
            if value and len(value) >= 4:
                forms |= {value, urllib.parse.quote(value, safe=""),
                          urllib.parse.quote_plus(value)}
        return sorted(forms, key=len, reverse=True)


@dataclass
class BuildRequest:
    repo: str
    ref: str = ""
    name: str = ""
    profile: str = ""
    owner: str = ""
    credentials: Credentials | None = None
    display_name: str = ""
    description: str = ""
    public: bool = True
    spec_name: str | None = None
    spec_version: str | None = None
    local_ok: bool = False  # internal callers (the composer) build from local paths


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


def parse_request(data: dict, owner: str, profiles: list[dict], allow_local: bool,
                  default_profile: str = "") -> BuildRequest:
    """Validate the API's JSON body (unknown fields are refused before this)."""
    repo, url_credentials = check_repo(data.get("repo"), allow_local)
    credentials = check_credentials(data.get("credentials")) or url_credentials
    profile = data.get("profile") or default_profile
    if profile and profile not in {p["name"] for p in profiles}:
        names = ", ".join(p["name"] for p in profiles) or "none are configured"
        raise InputError("profile", f"unknown profile {profile!r}; expected one of: {names}")
    for key in ("display_name", "description"):
        if not isinstance(data.get(key, ""), str):
            raise InputError(key, "expected text")
    if len(data.get("description") or "") > 2000:
        raise InputError("description", "longer than 2000 characters")
    public = data.get("public", True)
    if not isinstance(public, bool):
        raise InputError("public", "expected true or false")
    return BuildRequest(
        repo=repo, ref=check_ref(data.get("ref")), name=check_name(data.get("name"), repo),
        profile=profile, owner=owner, credentials=credentials,
        display_name=(data.get("display_name") or "")[:200],
        description=data.get("description") or "", public=public,
    )
