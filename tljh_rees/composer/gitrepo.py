"""A thin, isolated driver of ``git`` for the service's own bare repositories.

Git never reads the machine's or the service user's git configuration here, never
prompts for credentials, and only speaks the transports a build may use.
"""

from __future__ import annotations

import os
import subprocess

ZERO = "0" * 40
ALLOWED_PROTOCOLS = "file:https:http:git:ssh"


class GitError(RuntimeError):
    pass


class GitRepo:
    def __init__(self, git_dir: str, git: str = "git", timeout: float = 120):
        self.git_dir = git_dir
        self.git_bin = git
        self.timeout = timeout

    def env(self, extra: dict | None = None) -> dict:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.git_dir,
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "true",
            "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
            "GIT_DIR": self.git_dir,
        }
        env.update(extra or {})
        return env

    def run(self, *args: str, input: bytes | None = None, env: dict | None = None,
            check: bool = True, cwd: str | None = None) -> bytes:
        result = subprocess.run([self.git_bin, *args], input=input, capture_output=True,
                                env=self.env(env), cwd=cwd or self.git_dir,
                                timeout=self.timeout)
        if check and result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitError(message[-1] if message else f"git {args[0]} failed")
        return result.stdout

    def ok(self, *args: str) -> bool:
        """Whether a git command succeeds (for yes/no questions like merge-base)."""
        return subprocess.run([self.git_bin, *args], capture_output=True, env=self.env(),
                              cwd=self.git_dir, timeout=self.timeout).returncode == 0

    def text(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).decode("utf-8", "replace").strip()

    def init(self, branch: str) -> None:
        os.makedirs(self.git_dir, exist_ok=True)
        self.run("init", "-q", "--bare", f"--initial-branch={branch}", self.git_dir)

    def resolve(self, rev: str) -> str | None:
        out = self.run("rev-parse", "--verify", "-q", "--end-of-options", f"{rev}^{{commit}}",
                       check=False)
        return out.decode().strip() or None

    def tree_entries(self, rev: str) -> list[tuple[str, str, int, str]]:
        """(mode, blob sha, size, path) of every file in ``rev``."""
        out = self.run("ls-tree", "-r", "-z", "--long", "--end-of-options", rev)
        entries = []
        for record in out.split(b"\0"):
            if not record:
                continue
            meta, path = record.split(b"\t", 1)
            mode, kind, sha, size = meta.decode().split()
            if kind == "blob":
                entries.append((mode, sha, int(size), path.decode("utf-8", "surrogateescape")))
        return entries

    def read_blobs(self, shas: list[str]) -> dict[str, bytes]:
        if not shas:
            return {}
        out = self.run("cat-file", "--batch", input=("\n".join(shas) + "\n").encode())
        blobs, pos = {}, 0
        for _ in shas:
            header_end = out.index(b"\n", pos)
            sha, _kind, size = out[pos:header_end].decode().split()
            start = header_end + 1
            blobs[sha] = out[start:start + int(size)]
            pos = start + int(size) + 1
        return blobs

    def archive(self, rev: str, fmt: str, prefix: str = "") -> bytes:
        args = ["archive", f"--format={fmt}"]
        if prefix:
            args.append(f"--prefix={prefix}")
        return self.run(*args, "--end-of-options", rev)
