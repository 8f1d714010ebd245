"""Git operations for builds: resolve a ref to a commit, check a commit out.

Credentials reach git only through ``GIT_ASKPASS`` and the child's environment, so
they never appear in a command line, a URL, ``.git/config`` or an error message.

Transports are git's own guard, ``GIT_ALLOW_PROTOCOL`` (it overrides every
``protocol.*`` setting): https, http, git and ssh; ``file`` only for the top-level
repository and only when the caller allows local repositories. Submodules never get
``file`` (CVE-2022-39253: a ``.gitmodules`` naming a host path would copy any repository
on the host into the build, as root) nor ``ext``.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from contextlib import contextmanager

from .request import Credentials

HEX_RE = re.compile(r"^[0-9a-f]{4,40}$")
REMOTE_PROTOCOLS = "https:http:git:ssh"  # request.SCHEMES; never file or ext for submodules
ASKPASS = """#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$REES_GIT_USERNAME" ;;
  *) printf '%s\\n' "$REES_GIT_PASSWORD" ;;
esac
"""


class GitError(RuntimeError):
    pass


def redact(text: str, credentials: Credentials | None) -> str:
    if credentials:
        for secret in credentials.secrets():
            text = text.replace(secret, "***")
    return text


@contextmanager
def git_env(credentials: Credentials | None, allow_local: bool = False):
    """The environment for git commands on a repository (its transports: see module doc)."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false",
               GIT_CONFIG_NOSYSTEM="1", LC_ALL="C",
               GIT_ALLOW_PROTOCOL=REMOTE_PROTOCOLS + (":file" if allow_local else ""))
    env.pop("REES_GIT_USERNAME", None)
    env.pop("REES_GIT_PASSWORD", None)
    if credentials is None:
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="rees-askpass-") as tmp:
        script = os.path.join(tmp, "askpass")
        with open(script, "w") as f:
            f.write(ASKPASS)
        os.chmod(script, stat.S_IRWXU)
        env.update(GIT_ASKPASS=script, REES_GIT_USERNAME=credentials.username,
                   REES_GIT_PASSWORD=credentials.password)
        yield env


def submodule_env(env: dict) -> dict:
    """Submodules come from the network only, whatever the top-level repository was."""
    return dict(env, GIT_ALLOW_PROTOCOL=REMOTE_PROTOCOLS)


def _error_line(message: str) -> str:
    """The line that says why: a refused transport beats git's closing summary."""
    lines = message.splitlines()
    for line in lines:
        if "not allowed" in line:
            return line
    return lines[-1]


def _git(args: list[str], env: dict, credentials: Credentials | None, cwd: str | None = None,
         timeout: float = 300) -> str:
    # Never let a credential helper store what askpass gave.
    cmd = ["git", "-c", "credential.helper=", *args]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than {timeout:.0f}s") from None
    if proc.returncode != 0:
        message = redact(proc.stderr.strip() or proc.stdout.strip(), credentials)
        raise GitError(_error_line(message) if message else f"git {args[0]} failed")
    return proc.stdout


def resolve_ref(repo: str, ref: str, credentials: Credentials | None = None, *,
                allow_local: bool = False) -> str | None:
    """The full commit of ``ref`` from the remote's advertised refs.

    Returns None for a short sha or any commit not advertised by name: those can only
    be resolved after cloning (:func:`checkout` does). ``allow_local`` lets ``repo`` be a
    path or file:// URL (an admin's setting, or the service's own repositories).
    """
    with git_env(credentials, allow_local) as env:
        out = _git(["ls-remote", "--", repo], env, credentials, timeout=120)
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, name = line.partition("\t")
        refs[name] = sha
    ref = ref or "HEAD"
    if ref == "HEAD":
        if "HEAD" not in refs:
            raise GitError("the repository has no commits (or no default branch)")
        return refs["HEAD"]
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in refs:
            return refs[name]
    if HEX_RE.match(ref):
        return ref if len(ref) == 40 else None
    raise GitError(f"no branch or tag named {ref!r} in the repository")


def checkout(repo: str, ref: str, dest: str, credentials: Credentials | None = None, *,
             allow_local: bool = False) -> str:
    """Clone ``repo`` into ``dest`` at ``ref`` (a name or a full/short sha); return the sha.

    ``allow_local`` as for :func:`resolve_ref`; it never extends to submodules.
    """
    with git_env(credentials, allow_local) as env:
        _git(["clone", "--quiet", "--no-checkout", "--", repo, dest], env, credentials,
             timeout=1800)
        try:
            sha = _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], env,
                       credentials, cwd=dest).strip()
        except GitError:
            try:
                sha = _git(["rev-parse", "--verify", "--quiet", f"origin/{ref}^{{commit}}"],
                           env, credentials, cwd=dest).strip()
            except GitError:
                raise GitError(f"no commit, branch or tag {ref!r} in the repository") from None
        _git(["-c", "advice.detachedHead=false", "checkout", "--quiet", sha], env, credentials,
             cwd=dest)
        _git(["submodule", "update", "--init", "--recursive", "--quiet"], submodule_env(env),
             credentials, cwd=dest)
    return sha
