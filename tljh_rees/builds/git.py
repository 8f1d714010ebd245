"""Git operations for builds: resolve a ref to a commit, check a commit out.

The service runs as root and a repository (its URL, its ``.gitmodules``) is the builder's,
so git runs behind its own guards rather than filters of ours:

- transports: ``GIT_ALLOW_PROTOCOL`` (it overrides every ``protocol.*`` setting) allows
  https, http, git and ssh; ``file`` only for the top-level repository and only when the
  caller allows local repositories. Submodules never get ``file`` (CVE-2022-39253: a
  ``.gitmodules`` naming a host path would copy any repository on the host into the build).
- credentials: a credential helper configured for the repository's own scheme://host[:port]
  only (``credential.<url>.helper``); it reads the secret from the child's environment, so
  the secret never appears in a command line, a URL, ``.git/config`` or an error message.
  Any other host (a submodule's, say) gets nothing: ``GIT_ASKPASS=/bin/false``, no prompts.
- identity: nothing of the service's own: no system or global git config (credential
  helpers, extra headers, client certificates), no ssh agent, keys or ssh config.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
import urllib.parse
from contextlib import contextmanager

from .credentials import Credentials

HEX_RE = re.compile(r"^[0-9a-f]{4,40}$")
REMOTE_PROTOCOLS = "https:http:git:ssh"  # request.SCHEMES; never file or ext for submodules
# ssh as nobody in particular: no agent, no key files, no ssh_config (root's or the
# system's) nor ControlMaster socket, never a prompt. StrictHostKeyChecking=yes: a host must already be in the
# known_hosts an admin keeps (ssh only reads them here); accept-new would let any builder
# write root's known_hosts, and "no" would fetch from whoever answers.
SSH_COMMAND = ("ssh -F /dev/null -o BatchMode=yes -o IdentityAgent=none -o IdentitiesOnly=yes "
               "-o IdentityFile=/dev/null -o PubkeyAuthentication=no -o ControlPath=none "
               "-o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o ConnectTimeout=30")
# A git credential helper: answers "get" with the secret from its environment, and only
# for the host git was configured to ask it about (checked again here, exactly).
CREDENTIAL_HELPER = """#!/bin/sh
[ "$1" = get ] || exit 0
while IFS= read -r line && [ -n "$line" ]; do
  case "$line" in
    protocol=*) protocol=${line#protocol=} ;;
    host=*) host=${line#host=} ;;
  esac
done
[ "$protocol" = "$REES_GIT_PROTOCOL" ] && [ "$host" = "$REES_GIT_HOST" ] || exit 0
printf 'username=%s\\npassword=%s\\n' "$REES_GIT_USERNAME" "$REES_GIT_PASSWORD"
"""
# Dropped from the service's environment (as is every GIT_CONFIG_*: config is ours alone).
DROPPED_VARIABLES = ("REES_GIT_USERNAME", "REES_GIT_PASSWORD", "REES_GIT_PROTOCOL",
                     "REES_GIT_HOST", "SSH_AUTH_SOCK", "SSH_ASKPASS", "GIT_SSH")


class GitError(RuntimeError):
    pass


def redact(text: str, credentials: Credentials | None) -> str:
    if credentials:
        for secret in credentials.secrets():
            text = text.replace(secret, "***")
    return text


def credential_scope(repo: str) -> tuple[str, str] | None:
    """(protocol, host[:port]) that may receive the repository's credentials, if any."""
    parts = urllib.parse.urlsplit(repo)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        return None
    return parts.scheme, host


def _with_config(env: dict, config: list[tuple[str, str]]) -> None:
    """Git config through the environment: no quoting trouble, nothing on a command line."""
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value


@contextmanager
def git_env(repo: str, credentials: Credentials | None, allow_local: bool = False):
    """The environment for git commands on ``repo`` (top-level transports: see module doc)."""
    env = {k: v for k, v in os.environ.items()
           if k not in DROPPED_VARIABLES and not k.startswith("GIT_CONFIG_")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="/bin/false", GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL="/dev/null", LC_ALL="C", GIT_SSH_COMMAND=SSH_COMMAND,
               GIT_SSH_VARIANT="ssh",
               GIT_ALLOW_PROTOCOL=REMOTE_PROTOCOLS + (":file" if allow_local else ""))
    config = [("credential.helper", "")]  # the list of helpers starts empty: ours or none
    scope = credential_scope(repo)
    if credentials is None or scope is None:
        _with_config(env, config)
        yield env
        return
    with tempfile.TemporaryDirectory(prefix="rees-git-") as tmp:
        helper = os.path.join(tmp, "credential-helper")
        with open(helper, "w") as f:
            f.write(CREDENTIAL_HELPER)
        os.chmod(helper, stat.S_IRWXU)
        config.append((f"credential.{scope[0]}://{scope[1]}.helper", helper))
        _with_config(env, config)
        env.update(REES_GIT_PROTOCOL=scope[0], REES_GIT_HOST=scope[1],
                   REES_GIT_USERNAME=credentials.username or "git",
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
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
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
    with git_env(repo, credentials, allow_local) as env:
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
    with git_env(repo, credentials, allow_local) as env:
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
