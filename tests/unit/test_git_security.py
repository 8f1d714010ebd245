"""The git layer from the attacker's side: a builder controls the repository URL and
everything in the repository (its .gitmodules too), and git runs as root.

Repositories are served over git's smart HTTP on 127.0.0.1 (tests.githttp); plain http
stands in for https. Every test that shows a refusal has a control showing that the same
layout works when it is allowed, so that the refusal is not an accident of the set-up.
"""

from __future__ import annotations

import base64
import glob
import os
import subprocess
import time

import pytest

from tests.githttp import PrivateGitServer
from tests.helpers import CommandLineWatcher, GitRepo
from tljh_rees.builds.git import GitError, checkout, git_env, redact, resolve_ref
from tljh_rees.builds.credentials import Credentials
from tljh_rees.builds.request import check_repo

SECRET_TEXT = "host-secret-7f3a91"  # in a repository on the host that no build may read


class GitServer(PrivateGitServer):
    """tests.githttp's server, recording every request's headers; public without a user."""

    def __init__(self, root, username: str | None = None, password: str = "",
                 also: tuple[str, str] | None = None):
        super().__init__(str(root), username or "", password)
        self.public = username is None
        self.also = "Basic " + base64.b64encode(":".join(also).encode()).decode() if also else None
        self.headers: list[dict] = []

    def app(self, environ, start_response):
        self.headers.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        if self.public or (self.also and environ.get("HTTP_AUTHORIZATION") == self.also):
            environ["HTTP_AUTHORIZATION"] = self.expected
        return super().app(environ, start_response)

    def all_header_text(self) -> str:
        """Every header value, with basic-auth values decoded too."""
        text = []
        for headers in self.headers:
            for value in headers.values():
                text.append(value)
                if value.startswith("Basic "):
                    text.append(base64.b64decode(value[6:]).decode("latin-1"))
        return "\n".join(text)


def serve(repo: GitRepo, root, name: str) -> None:
    """Put a bare copy of ``repo`` at ``root/name`` (what a server serves)."""
    root.mkdir(exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--bare", repo.path, str(root / name)], check=True)


def add_submodule(repo: GitRepo, url: str, sha: str, path: str = "lib") -> str:
    """Commit a submodule at ``path`` pointing to ``url`` at ``sha``, without fetching it."""
    with open(os.path.join(repo.path, ".gitmodules"), "w") as f:
        f.write(f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n')
    repo.git("add", ".gitmodules")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    repo.git("commit", "-q", "-m", "add a submodule")
    return repo.git("rev-parse", "HEAD")


def tree_text(root) -> str:
    """Every file under ``root`` (.git included), as text."""
    out = []
    for path in glob.glob(f"{root}/**", recursive=True, include_hidden=True):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out.append(f.read().decode("latin-1"))
    return "\n".join(out)


@pytest.fixture
def secret_repo(git_repo):
    """A repository on the host holding a secret (as any of root's repositories might)."""
    repo = git_repo()
    sha = repo.commit({"secret.txt": SECRET_TEXT + "\n"})
    return repo, sha


@pytest.fixture
def lib_repo(git_repo):
    repo = git_repo()
    return repo, repo.commit({"lib.txt": "an ordinary submodule\n"})


# -- 1. transports: no host paths through .gitmodules; local top level only when allowed -----

@pytest.mark.parametrize("form", ["file-url", "path"])
def test_a_public_repo_cannot_pull_a_host_repository_in_as_a_submodule(
        git_repo, secret_repo, tmp_path, form):
    secret, secret_sha = secret_repo
    main = git_repo()
    main.commit({"README.md": "public\n"})
    add_submodule(main, secret.url if form == "file-url" else secret.path, secret_sha)
    serve(main, tmp_path / "srv", "main.git")
    dest = tmp_path / "checkout"
    with GitServer(tmp_path / "srv") as server:
        with pytest.raises(GitError) as e:
            checkout(f"{server.url}/main.git", "HEAD", str(dest))
    assert "transport 'file' not allowed" in str(e.value)
    assert SECRET_TEXT not in tree_text(dest)


def test_control_the_same_layout_works_with_a_submodule_over_http(git_repo, lib_repo, tmp_path):
    lib, lib_sha = lib_repo
    serve(lib, tmp_path / "srv", "lib.git")
    main = git_repo()
    main.commit({"README.md": "public\n"})
    with GitServer(tmp_path / "srv") as server:
        sha = add_submodule(main, f"{server.url}/lib.git", lib_sha)
        serve(main, tmp_path / "srv", "main.git")
        dest = tmp_path / "checkout"
        assert checkout(f"{server.url}/main.git", "HEAD", str(dest)) == sha
    assert (dest / "lib" / "lib.txt").read_text() == "an ordinary submodule\n"


def test_ext_submodules_run_nothing(git_repo, tmp_path):
    marker = tmp_path / "ran"
    main = git_repo()
    main.commit({"README.md": "public\n"})
    add_submodule(main, f"ext::sh -c touch% {marker}", "1" * 40)
    serve(main, tmp_path / "srv", "main.git")
    with GitServer(tmp_path / "srv") as server:
        with pytest.raises(GitError):
            checkout(f"{server.url}/main.git", "HEAD", str(tmp_path / "checkout"))
    assert not marker.exists()


@pytest.mark.parametrize("form", ["file-url", "path"])
def test_a_local_top_level_repo_needs_allow_local(secret_repo, tmp_path, form):
    secret, sha = secret_repo
    repo = secret.url if form == "file-url" else secret.path
    with pytest.raises(GitError, match="transport 'file' not allowed"):
        resolve_ref(repo, "HEAD")
    with pytest.raises(GitError, match="transport 'file' not allowed"):
        checkout(repo, "HEAD", str(tmp_path / "refused"))
    assert not (tmp_path / "refused" / "secret.txt").exists()
    # control: the caller allows local repositories (an admin's setting, the composer)
    assert resolve_ref(repo, "HEAD", allow_local=True) == sha
    assert checkout(repo, "HEAD", str(tmp_path / "allowed"), allow_local=True) == sha
    assert (tmp_path / "allowed" / "secret.txt").read_text().strip() == SECRET_TEXT


def test_allow_local_never_extends_to_submodules(git_repo, secret_repo, lib_repo, tmp_path):
    secret, secret_sha = secret_repo
    main = git_repo()
    main.commit({"README.md": "local\n"})
    add_submodule(main, secret.url, secret_sha)
    with pytest.raises(GitError, match="transport 'file' not allowed"):
        checkout(main.path, "HEAD", str(tmp_path / "checkout"), allow_local=True)
    assert SECRET_TEXT not in tree_text(tmp_path / "checkout")


# -- 2. credentials go to the repository's own scheme://host:port only ---------------------

def test_credentials_never_reach_a_submodule_on_another_host(git_repo, lib_repo, tmp_path):
    token_a = "tokenA-9c1e77"
    lib, lib_sha = lib_repo
    serve(lib, tmp_path / "b", "lib.git")
    main = git_repo()
    main.commit({"README.md": "private\n"})
    with GitServer(tmp_path / "a", "alice", token_a) as a, \
            GitServer(tmp_path / "b", "bob", "tokenB-other") as b:
        add_submodule(main, f"{b.url}/lib.git", lib_sha)
        serve(main, tmp_path / "a", "main.git")
        with pytest.raises(GitError) as e:
            checkout(f"{a.url}/main.git", "HEAD", str(tmp_path / "checkout"),
                     Credentials("alice", token_a))
    assert a.authorized_requests > 0  # control: the repository's own host got them
    assert b.headers, "the submodule's host was never asked: the test proves nothing"
    assert token_a not in b.all_header_text()
    assert b.authorized_requests == 0
    assert token_a not in str(e.value)


def test_a_submodule_on_the_same_host_gets_the_credentials(git_repo, lib_repo, tmp_path):
    token = "tokenA-5d20aa"
    lib, lib_sha = lib_repo
    serve(lib, tmp_path / "a", "lib.git")
    main = git_repo()
    main.commit({"README.md": "private\n"})
    with GitServer(tmp_path / "a", "alice", token) as a:
        sha = add_submodule(main, f"{a.url}/lib.git", lib_sha)
        serve(main, tmp_path / "a", "main.git")
        dest = tmp_path / "checkout"
        assert checkout(f"{a.url}/main.git", "HEAD", str(dest),
                        Credentials("alice", token)) == sha
        assert resolve_ref(f"{a.url}/main.git", "HEAD", Credentials("alice", token)) == sha
    assert (dest / "lib" / "lib.txt").exists()
    assert token not in tree_text(dest)  # .git/config, .git/modules/lib/config, ...


def test_wrong_credentials_fail_without_showing_them(git_repo, tmp_path):
    main = git_repo()
    main.commit({"README.md": "private\n"})
    serve(main, tmp_path / "a", "main.git")
    wrong = "wrong-token-41b0"
    with GitServer(tmp_path / "a", "alice", "right-token") as a:
        with pytest.raises(GitError) as e:
            resolve_ref(f"{a.url}/main.git", "HEAD", Credentials("alice", wrong))
        assert a.headers and wrong in a.all_header_text()  # it was tried, then refused
    assert wrong not in str(e.value)


def test_the_services_own_git_config_is_not_used(git_repo, tmp_path, monkeypatch):
    """Root's ~/.gitconfig (or config in its environment) may carry its identity: extra
    headers, credential helpers. None of it applies to a builder's repository."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[http]\n\textraHeader = X-Root-Token: root-secret-e4\n"
        "[credential]\n\thelper = \"!printf 'username=git\\\\npassword=root-pw-e4\\\\n'; :\"\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'http.extraheader=X-Env-Token: env-secret-e4'")
    main = git_repo()
    main.commit({"README.md": "private\n"})
    serve(main, tmp_path / "a", "main.git")
    with GitServer(tmp_path / "a", "git", "root-pw-e4") as a:
        url = f"{a.url}/main.git"
        control = subprocess.run(["git", "ls-remote", url], capture_output=True, text=True)
        assert control.returncode == 0, control.stderr  # plain git as root uses it all
        sent = a.all_header_text()
        assert "root-secret-e4" in sent and "root-pw-e4" in sent and "env-secret-e4" in sent
        a.headers.clear()
        with pytest.raises(GitError):
            resolve_ref(url, "HEAD")
        sent = a.all_header_text()
    assert sent  # it did ask the server
    for secret in ("root-secret-e4", "root-pw-e4", "env-secret-e4"):
        assert secret not in sent


# -- 3. a token given as the URL's user part ----------------------------------------------

def test_a_lone_user_part_is_a_password_and_redacted():
    token = "ghp_LoneUserPart123"
    repo, credentials = check_repo(f"https://{token}@example.org/owner/repo.git", False)
    assert repo == "https://example.org/owner/repo.git"
    assert credentials.password == token and credentials.username == "git"
    assert token in credentials.secrets()
    assert token not in redact(f"fatal: could not read Password for 'https://{token}@x'",
                               credentials)
    repo, credentials = check_repo("https://alice:pw%2Fx@[::1]:8443/r.git", False)
    assert repo == "https://[::1]:8443/r.git"
    assert (credentials.username, credentials.password) == ("alice", "pw/x")


def test_a_token_in_the_user_part_is_on_no_command_line(git_repo, tmp_path, monkeypatch):
    token = "glpat-UserPartToken77"
    trace = tmp_path / "trace"
    monkeypatch.setenv("GIT_TRACE", str(trace))  # git logs every command it runs, with argv
    main = git_repo()
    sha = main.commit({"README.md": "private\n"})
    serve(main, tmp_path / "a", "main.git")
    # like GitHub, the server takes the token as the user name or as the password
    with GitServer(tmp_path / "a", "git", token, also=(token, "")) as a:
        repo, credentials = check_repo(f"{a.url.replace('://', f'://{token}@')}/main.git",
                                       False)
        watcher = CommandLineWatcher(token)
        try:
            assert resolve_ref(repo, "HEAD", credentials) == sha
            assert checkout(repo, "HEAD", str(tmp_path / "checkout"), credentials) == sha
        finally:
            found = watcher.stop()
    assert found == []
    assert watcher.git_commands_seen > 0
    traced = trace.read_text()
    assert "run_command:" in traced and "remote-http" in traced  # control: children traced
    assert token not in traced
    assert token not in tree_text(tmp_path / "checkout")


# -- 4. ssh never with the service's identity -----------------------------------------------

@pytest.fixture
def ssh_spy(tmp_path, monkeypatch):
    """An ``ssh`` first on PATH that records what git gave it, then runs the real one."""
    real = subprocess.run(["sh", "-c", "command -v ssh"], capture_output=True,
                          text=True).stdout.strip()
    assert real, "ssh is not installed"
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "ssh").write_text(f"""#!/bin/sh
env > {spy}/env
{real} -G "$@" > {spy}/config 2>&1
exec {real} "$@"
""")
    (spy / "ssh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{spy}:{os.environ['PATH']}")
    agent = tmp_path / "agent.sock"  # the service's agent (a dummy path is enough here)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent))
    return spy


@pytest.mark.parametrize("repo", ["ssh://git@127.0.0.1:1/owner/repo.git",
                                  "git@127.0.0.1:owner/repo.git"])
def test_ssh_uses_no_agent_no_keys_and_never_prompts(ssh_spy, repo):
    started = time.monotonic()
    with pytest.raises(GitError):
        resolve_ref(repo, "HEAD")
    assert time.monotonic() - started < 30  # failed, without waiting on a prompt
    env = (ssh_spy / "env").read_text()  # control: git did run our ssh
    assert "SSH_AUTH_SOCK=" not in env
    config = dict(line.partition(" ")[::2] for line in
                  (ssh_spy / "config").read_text().splitlines())
    assert config["identityagent"] == "none"
    assert config["batchmode"] == "yes"
    assert config["stricthostkeychecking"] == "true"
    assert config["pubkeyauthentication"] == "false"
    assert config["gssapiauthentication"] == "no"  # no ssh_config read (Debian's turns it on)
    identities = [line for line in (ssh_spy / "config").read_text().splitlines()
                  if line.startswith("identityfile ")]
    assert identities == ["identityfile /dev/null"]  # not ~/.ssh/id_* of root


def test_ssh_settings_in_the_environment_git_gets(monkeypatch):
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    monkeypatch.setenv("GIT_SSH", "/usr/local/bin/roots-ssh")
    monkeypatch.setenv("GIT_SSH_COMMAND", "ssh -i /root/.ssh/id_ed25519")
    with git_env("ssh://host/x", None) as env:
        assert "SSH_AUTH_SOCK" not in env and "GIT_SSH" not in env
        assert "-i /root" not in env["GIT_SSH_COMMAND"]
        assert "-F /dev/null" in env["GIT_SSH_COMMAND"]
        assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ASKPASS"] == "/bin/false"
