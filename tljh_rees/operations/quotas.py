"""Quotas (``rees.quotas.*``): how much one person, or one environment, may take of a
busy machine at once. Over a quota is a 429 whose message names the quota's setting, the
current use, and what to do; ``Retry-After`` says when to try again.

The checks take counts, so the callers decide where the counts come from: the Hub's API
for a user's servers (``Launcher.start``), the build queue for builds
(``BuildManager._start``), and :class:`StartingLaunches` for launches still starting.
Admins are exempt from the per-user quotas; the total queue length applies to everyone.
"""

from __future__ import annotations

import time

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from ..catalog import Viewer
from ..ondemand.limits import TooMany


class Quotas(LoggingConfigurable):
    servers_per_user = Integer(
        0, config=True,
        help="Servers one user may have running or starting at once, counted at a launch "
             "through the service (rees.quotas.servers_per_user); 0 for no quota. Admins "
             "are exempt.")
    queued_builds_per_user = Integer(
        3, config=True,
        help="Builds of one user waiting for a build slot (rees.quotas.queued_builds_per_"
             "user); 0 for no quota. Admins are exempt.")
    launches_per_environment = Integer(
        0, config=True,
        help="Launches of one environment (or template) starting at once, over all users "
             "(rees.quotas.launches_per_environment); 0 for no quota.")
    queue_length = Integer(
        50, config=True,
        help="Builds waiting for a build slot, over all users (rees.quotas.queue_length); "
             "0 for no quota.")
    retry_after = Integer(30, config=True,
                          help="Seconds a refused request is told to wait (Retry-After).")

    def check_servers(self, viewer: Viewer, running: int) -> None:
        """Refuse a new server when ``viewer`` has ``running`` servers already."""
        quota = self.servers_per_user
        if quota and not viewer.admin and running >= quota:
            raise TooMany(
                f"quota rees.quotas.servers_per_user: you have {running} server(s) running "
                f"or starting and at most {quota} are allowed; stop one (the Servers page, "
                "or DELETE api/servers/<name>) and launch again",
                retry_after=self.retry_after)

    def check_builds(self, viewer: Viewer, queued_of_user: int, queued: int) -> None:
        """Refuse one more queued build when ``viewer`` has ``queued_of_user`` builds
        waiting, and ``queued`` wait in all."""
        quota = self.queued_builds_per_user
        # builds for Binder links are the site's (no name): only the queue length holds
        if quota and not viewer.admin and viewer.name and queued_of_user >= quota:
            raise TooMany(
                f"quota rees.quotas.queued_builds_per_user: you have {queued_of_user} "
                f"build(s) waiting for a build slot and at most {quota} may wait; wait for "
                "one to start, or cancel one (DELETE api/builds/<id>), then build again",
                retry_after=self.retry_after)
        if self.queue_length and queued >= self.queue_length:
            raise TooMany(
                f"quota rees.quotas.queue_length: {queued} build(s) are waiting for a build "
                f"slot and at most {self.queue_length} may wait; try again when the queue "
                "is shorter", retry_after=self.retry_after)

    def check_launches(self, environment: str, starting: int) -> None:
        """Refuse a launch of ``environment`` while ``starting`` launches of it start."""
        quota = self.launches_per_environment
        if quota and starting >= quota:
            raise TooMany(
                f"quota rees.quotas.launches_per_environment: {starting} launch(es) of "
                f"{environment} are starting and at most {quota} may start at once; try "
                "again in a moment", retry_after=max(5, self.retry_after // 3))


class StartingLaunches:
    """Launches that have started and are not ready yet, by environment (in memory).

    A launch ends when the service sees its server ready or gone; one never seen to end
    is forgotten after ``forget_after`` seconds, so a lost watch cannot block an
    environment for good.
    """

    def __init__(self, forget_after: float = 900, clock=time.monotonic):
        self.forget_after = forget_after
        self.clock = clock
        self.launches: dict[str, tuple[str, float]] = {}  # key -> (environment, since)

    def begin(self, key: str, environment: str) -> None:
        self.launches[key] = (environment, self.clock())

    def end(self, key: str) -> None:
        self.launches.pop(key, None)

    def count(self, environment: str) -> int:
        now = self.clock()
        for key, (_, since) in list(self.launches.items()):
            if now - since > self.forget_after:
                del self.launches[key]
        return sum(env == environment for env, _ in self.launches.values())
