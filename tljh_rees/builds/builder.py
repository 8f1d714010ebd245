"""What turns a fetched source into an image: the small interface builders implement.

The service picks the class with ``ReesService.builder_class``: repo2docker as a
subprocess (:class:`~tljh_rees.builds.repo2docker.Repo2DockerBuilder`) today; a remote
or Swarm builder later. ``tljh_rees.fakes.FakeBuilder`` stands in for fast tests of
the queue.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from traitlets.config import LoggingConfigurable


class BuildFailed(RuntimeError):
    """The build did not produce an image; the message says why."""


class Builder(LoggingConfigurable):
    publishes = False  # whether ``publish`` puts images anywhere (a registry)

    async def build(self, source_dir: str, image: str, labels: dict[str, str],
                    on_line: Callable[[str], None],
                    on_process: Callable[[asyncio.subprocess.Process], None] = lambda p: None,
                    client_packages: Sequence[str] = (),
                    ) -> None:
        """Build ``source_dir`` into the local image ``image`` carrying ``labels``.

        ``on_line`` gets the build's output line by line; ``on_process`` the child
        process, if any, so that cancelling can stop it. ``client_packages``: pip
        requirements of the add-on services the repository declares, to install into
        the environment the notebooks run in (given only when there are some). Raise
        :class:`BuildFailed`.
        """
        raise NotImplementedError

    async def publish(self, image: str, on_line: Callable[[str], None]) -> str:
        """Make the built ``image`` available beyond this engine; returns its reference
        there ('' for a builder whose images stay local, as here). Raise
        :class:`BuildFailed` if it cannot (multi-node mode: tljh_rees/swarm/builder.py)."""
        return ""
