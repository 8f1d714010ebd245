"""Specs as versioned REES repositories owned by the service.

Each spec is a bare git repository ``{state_dir}/specs/<name>``; every save is a commit on
``main`` and a version is that commit's sha. A save builds the new tree in a temporary
index and moves ``main`` with a compare-and-swap (``git update-ref NEW OLD``): until that
last step nothing the readers see has changed, so a failed or concurrent save leaves the
previous version intact. A new spec is made in a temporary directory and renamed into
place. Owner and display fields live beside the repository in ``rees-spec.json``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field

from traitlets import Int, Unicode
from traitlets.config import LoggingConfigurable

from .errors import SpecError
from .gitrepo import ZERO, GitError, GitRepo
from .paths import check_spec_name, clean_path
from .sections import is_executable

BRANCH = "main"
REGULAR_MODES = ("100644", "100755")  # not 120000 (symbolic link)
META_FILE = "rees-spec.json"
_SHA = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass
class SpecInfo:
    name: str
    owner: str
    display_name: str = ""
    description: str = ""
    created: str = ""
    forked_from: str = ""
    version: str | None = None
    updated: str | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SpecFiles:
    """The files of one version (contents only of the files asked for)."""

    version: str
    sizes: dict[str, int] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)
    contents: dict[str, bytes] = field(default_factory=dict)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _git_identity(user: str) -> dict:
    name = re.sub(r"[<>\n\r]", "", user) or "tljh-rees"
    email = re.sub(r"[^A-Za-z0-9._+-]", "-", name) + "@tljh-rees.invalid"
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": "tljh-rees", "GIT_COMMITTER_EMAIL": "rees@tljh-rees.invalid"}


class SpecStore(LoggingConfigurable):
    root = Unicode(help="Directory holding one bare git repository per spec.")
    git = Unicode("git", config=True, help="The git executable.")
    max_file_bytes = Int(20 * 1024**2, config=True, help="Largest file a spec may hold.")
    max_total_bytes = Int(100 * 1024**2, config=True,
                          help="Largest total size of a spec's files (and of an import).")
    max_files = Int(5000, config=True, help="Most files a spec may hold.")
    fetch_timeout = Int(300, config=True,
                        help="Seconds allowed to fetch an environment's repository for a fork.")

    # --- reading ---------------------------------------------------------------------

    def path(self, name: str) -> str:
        return os.path.join(self.root, check_spec_name(name))

    def repo(self, name: str) -> GitRepo:
        return GitRepo(self.path(name), self.git)

    def exists(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.path(name), META_FILE))

    def info(self, name: str) -> SpecInfo:
        try:
            with open(os.path.join(self.path(name), META_FILE)) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise SpecError("name", f"no spec named {name!r}", 404) from None
        info = SpecInfo(name=name, **{k: v for k, v in meta.items()
                                      if k in SpecInfo.__dataclass_fields__ and k != "name"})
        head = self.repo(name).text("log", "-1", "--format=%H %cI", BRANCH, check=False)
        if head:
            info.version, info.updated = head.split(" ", 1)
        return info

    def list(self) -> list[SpecInfo]:
        if not os.path.isdir(self.root):
            return []
        names = sorted(n for n in os.listdir(self.root) if not n.startswith("."))
        return [self.info(n) for n in names if self.exists(n)]

    def resolve(self, name: str, version: str | None = None) -> str:
        """The full sha of ``version`` (a sha or prefix on main), or of the newest one."""
        repo = self.repo(name)
        if not self.exists(name):
            raise SpecError("name", f"no spec named {name!r}", 404)
        head = repo.resolve(BRANCH)
        if not version:
            if head is None:
                raise SpecError("version", f"spec {name!r} has no saved version yet", 404)
            return head
        if not isinstance(version, str) or not _SHA.match(version):
            raise SpecError("version", "expected a version: the commit sha a save returned")
        sha = repo.resolve(version)
        if sha is None or not repo.ok("merge-base", "--is-ancestor", sha, BRANCH):
            raise SpecError("version", f"spec {name!r} has no version {version}", 404)
        return sha

    def files(self, name: str, version: str | None = None,
              wanted=lambda path: False) -> SpecFiles:
        """A version's file listing, with the contents of the paths ``wanted`` accepts."""
        sha = self.resolve(name, version)
        repo = self.repo(name)
        result = SpecFiles(version=sha)
        blob_of = {}
        for mode, blob, size, path in repo.tree_entries(sha):
            result.sizes[path] = size
            if mode == "100755":
                result.executable.add(path)
            if mode in REGULAR_MODES and wanted(path):
                blob_of[path] = blob
        blobs = repo.read_blobs(sorted(set(blob_of.values())))
        result.contents = {p: blobs[b] for p, b in blob_of.items()}
        return result

    def history(self, name: str, limit: int = 200) -> list[dict]:
        self.resolve(name)
        out = self.repo(name).text("log", f"-{limit}", "--format=%H%x1f%an%x1f%aI%x1f%s", BRANCH)
        versions = []
        for line in out.splitlines():
            sha, author, date, message = line.split("\x1f", 3)
            versions.append({"version": sha, "author": author, "created": date,
                             "message": message})
        return versions

    def zip(self, name: str, version: str | None = None) -> tuple[str, bytes]:
        """A zip of one version, inside a folder named after the spec; (sha, bytes)."""
        sha = self.resolve(name, version)
        return sha, self.repo(name).archive(sha, "zip", prefix=f"{name}/")

    def checkout(self, name: str, version: str | None, dest: str) -> str:
        """Write a version's regular files into ``dest`` (for previews); returns the sha.

        Symbolic links (a forked repository may hold some) are left out: followed here,
        one could show a file of this machine in a preview.
        """
        sha = self.resolve(name, version)
        repo = self.repo(name)
        entries = [(m, b, p) for m, b, _size, p in repo.tree_entries(sha)
                   if m in REGULAR_MODES]
        blobs = repo.read_blobs(sorted({b for _m, b, _p in entries}))
        for mode, blob, path in entries:
            target = os.path.join(dest, clean_path(path, "files"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(blobs[blob])
            os.chmod(target, 0o755 if mode == "100755" else 0o644)
        return sha

    # --- writing ---------------------------------------------------------------------

    def create(self, name: str, owner: str, changes: dict[str, bytes | None],
               display_name: str = "", description: str = "", message: str = "",
               source: tuple[str, str, str] | None = None, forked_from: str = "",
               executable=frozenset()) -> SpecInfo:
        """Make a new spec. ``source`` = (repository, commit, ref) to start from its files."""
        check_spec_name(name)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        if self.exists(name):
            raise SpecError("name", f"a spec named {name!r} exists; choose another name", 409)
        staging = os.path.join(self.root, f".new-{name}-{uuid.uuid4().hex[:8]}")
        try:
            repo = GitRepo(staging, self.git)
            repo.init(BRANCH)
            base_tree = None
            if source:
                base_tree = self._fetch_tree(repo, *source)
            meta = {"owner": owner, "display_name": display_name, "description": description,
                    "created": _now(), "forked_from": forked_from}
            with open(os.path.join(staging, META_FILE), "w") as f:
                json.dump(meta, f)
            self._commit(repo, changes, owner, message or "Created in the composer",
                         head=None, base_tree=base_tree, executable=executable)
            try:
                os.rename(staging, self.path(name))
            except OSError:
                raise SpecError("name", f"a spec named {name!r} exists; choose another "
                                        "name", 409) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.info(name)

    def save(self, name: str, changes: dict[str, bytes | None], author: str,
             message: str = "", base_version: str | None = None,
             replace_all: bool = False, executable=frozenset()) -> str:
        """A new version with ``changes`` (path -> content, None deletes); returns its sha.

        With ``base_version`` the save happens only if that is still the newest version.
        """
        repo = self.repo(name)
        if not self.exists(name):
            raise SpecError("name", f"no spec named {name!r}", 404)
        head = repo.resolve(BRANCH)
        if base_version and (head is None or not head.startswith(base_version)):
            raise SpecError("base_version", f"the spec changed since version "
                                            f"{base_version[:12]} (newest: "
                                            f"{(head or 'none')[:12]}); reload it", 409)
        return self._commit(repo, changes, author, message or "Saved in the composer",
                            head=head, base_tree=None if replace_all else head,
                            executable=executable)

    def update_meta(self, name: str, **fields) -> SpecInfo:
        path = os.path.join(self.path(name), META_FILE)
        with open(path) as f:
            meta = json.load(f)
        meta.update({k: v for k, v in fields.items() if v is not None})
        tmp = f"{path}.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w") as f:
            json.dump(meta, f)
        os.replace(tmp, path)
        return self.info(name)

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not self.exists(name):
            raise SpecError("name", f"no spec named {name!r}", 404)
        trash = os.path.join(self.root, f".deleted-{name}-{uuid.uuid4().hex[:8]}")
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)

    # --- internals -------------------------------------------------------------------

    def check_limits(self, sizes: dict[str, int]) -> None:
        if len(sizes) > self.max_files:
            raise SpecError("files", f"{len(sizes)} files; a spec holds at most "
                                     f"{self.max_files}", 413)
        for path, size in sizes.items():
            if size > self.max_file_bytes:
                raise SpecError("files", f"{path} is {size} bytes; the largest file allowed "
                                         f"is {self.max_file_bytes} bytes", 413)
        total = sum(sizes.values())
        if total > self.max_total_bytes:
            raise SpecError("files", f"the files total {total} bytes; at most "
                                     f"{self.max_total_bytes} bytes are allowed", 413)

    def _commit(self, repo: GitRepo, changes: dict[str, bytes | None], author: str,
                message: str, head: str | None, base_tree: str | None,
                executable=frozenset()) -> str:
        changes = {clean_path(p, "files"): c for p, c in changes.items()}
        executable = {clean_path(p, "files") for p in executable}
        with tempfile.TemporaryDirectory(prefix="rees-spec-") as work:
            index_env = {"GIT_INDEX_FILE": os.path.join(work, "index")}
            if base_tree:
                repo.run("read-tree", "--end-of-options", base_tree, env=index_env)
            else:
                repo.run("read-tree", "--empty", env=index_env)
            written = sorted((p, c) for p, c in changes.items() if c is not None)
            blob_files = []
            for i, (_path, content) in enumerate(written):
                blob_files.append(os.path.join(work, f"blob{i}"))
                with open(blob_files[-1], "wb") as f:
                    f.write(content)
            shas = repo.text("hash-object", "-w", "--stdin-paths",
                             input="\n".join(blob_files).encode()).split()
            lines = [f"0 {ZERO}\t{p}" for p, c in changes.items() if c is None]
            for (path, _content), sha in zip(written, shas):
                mode = "100755" if path in executable or is_executable(path) else "100644"
                lines.append(f"{mode} {sha}\t{path}")
            if lines:
                try:
                    repo.run("update-index", "--index-info",
                             input=("\n".join(lines) + "\n").encode(), env=index_env)
                except GitError as e:
                    raise SpecError("files", f"the files cannot be stored together: {e}") \
                        from None
            tree = repo.text("write-tree", env=index_env)
        self.check_limits({path: size for _m, _b, size, path in repo.tree_entries(tree)})
        if head and repo.text("rev-parse", f"{head}^{{tree}}") == tree:
            return head  # nothing changed: no new version
        args = ["commit-tree", tree, "-m", message]
        if head:
            args += ["-p", head]
        commit = repo.text(*args, env=_git_identity(author))
        try:
            repo.run("update-ref", "-m", message, f"refs/heads/{BRANCH}", commit, head or ZERO)
        except GitError:
            raise SpecError("base_version", "the spec was saved by someone else meanwhile; "
                                            "reload it and save again", 409) from None
        return commit

    def _fetch_tree(self, repo: GitRepo, source: str, commit: str, ref: str) -> str:
        """Fetch ``commit`` of another repository into ``repo``; returns its tree."""
        if source.startswith("-"):
            raise SpecError("source", "a repository cannot start with '-'")
        fetch = GitRepo(repo.git_dir, self.git, timeout=self.fetch_timeout)
        attempts = [["--depth=1", source, commit]]
        if ref and ref != "HEAD" and not ref.startswith("-"):
            attempts.append([source, ref])
        attempts.append([source, "+refs/heads/*:refs/fork/heads/*",
                         "+refs/tags/*:refs/fork/tags/*"])
        error = ""
        for args in attempts:
            try:
                fetch.run("-c", "transfer.fsckObjects=true", "fetch", "-q", "--no-tags",
                          "--end-of-options", *args)
            except (GitError, subprocess.TimeoutExpired) as e:
                error = str(e)
            if repo.resolve(commit):
                break
        else:
            raise SpecError("source", f"could not fetch commit {commit[:12]} of {source}: "
                                      f"{error or 'not found'}", 502)
        for ref_name in repo.text("for-each-ref", "--format=%(refname)", "refs/fork").split():
            repo.run("update-ref", "-d", ref_name)
        return repo.text("rev-parse", f"{commit}^{{tree}}")

