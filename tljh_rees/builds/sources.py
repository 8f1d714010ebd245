"""Where a build's files come from: a source resolves a ref to an immutable version
and fetches that version into a folder.

``repo`` is what the catalog records for the environment; together with the version it
identifies a build, so the same repository at the same version is built once.
Git repositories (remote, local where allowed, and the composer's specs, which are
git repositories the service keeps) are all :class:`GitSource`; other kinds (archives
from Zenodo, Figshare, …) add a class here.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from ..errors import InputError
from .git import GitError, checkout, redact, resolve_ref
from .credentials import Credentials


class Source:
    repo: str = ""
    kind = ""  # recorded with each build: "git" sources can be fetched again after a restart

    @property
    def private(self) -> bool:
        """Whether fetching needs secrets the service does not keep (so a build
        interrupted by a restart cannot be re-run)."""
        return False

    async def resolve(self, ref: str) -> str | None:
        """The immutable version ``ref`` names, or None if only fetching can tell."""
        raise NotImplementedError

    async def fetch(self, ref: str, dest: str,
                    on_line: Callable[[str], None] = lambda line: None) -> str:
        """Put the files of ``ref`` into ``dest`` (telling ``on_line`` how it goes);
        return the version fetched."""
        raise NotImplementedError

    def redact(self, text: str) -> str:
        """``text`` without this source's secrets."""
        return text


class GitSource(Source):
    kind = "git"

    def __init__(self, repo: str, credentials: Credentials | None = None,
                 allow_local: bool = False):
        self.repo = repo
        self.credentials = credentials
        self.allow_local = allow_local

    @property
    def private(self) -> bool:
        return self.credentials is not None

    async def resolve(self, ref: str) -> str | None:
        try:
            return await asyncio.to_thread(resolve_ref, self.repo, ref, self.credentials,
                                           allow_local=self.allow_local)
        except GitError as e:
            raise InputError("ref" if "branch or tag" in str(e) else "repo",
                             f"cannot read the repository: {e}", status=422) from None

    async def fetch(self, ref: str, dest: str,
                    on_line: Callable[[str], None] = lambda line: None) -> str:
        return await asyncio.to_thread(checkout, self.repo, ref, dest, self.credentials,
                                       allow_local=self.allow_local)

    def redact(self, text: str) -> str:
        return redact(text, self.credentials)
