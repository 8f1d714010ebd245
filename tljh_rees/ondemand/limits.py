"""The caps on launches: anonymous servers in all, launches per client address per
hour, a template's own maximum. Over a cap is a 429 that names the cap and says when to
try again."""

from __future__ import annotations

import ipaddress
import time
from collections import defaultdict, deque

from ..errors import ReesError

HOUR = 3600


class TooMany(ReesError):
    status = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


def client_address(remote_ip: str, forwarded_for: str, trusted=("127.0.0.0/8", "::1/128")
                   ) -> str:
    """The address a request came from: the nearest hop of ``X-Forwarded-For`` that is
    not one of our own proxies (the Hub's proxy, TLJH's traefik; loopback by default).
    Entries further left are the client's own word, so they are never believed."""
    networks = [ipaddress.ip_network(n) for n in trusted]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in net for net in networks)

    hops = [remote_ip] + [h.strip() for h in reversed(forwarded_for.split(",")) if h.strip()]
    for hop in hops:
        if not is_trusted(hop):
            return hop
    return hops[-1]


class RateLimit:
    """At most ``per_hour`` events per key in any sliding hour (kept in memory: a restart
    of the service forgets them)."""

    def __init__(self, per_hour: int, clock=time.monotonic):
        self.per_hour = per_hour
        self.clock = clock
        self.events: dict[str, deque] = defaultdict(deque)

    def check(self, key: str) -> None:
        """Raise TooMany if ``key`` has had ``per_hour`` events in the last hour."""
        if self.per_hour <= 0:
            return
        now = self.clock()
        events = self.events.get(key)
        while events and events[0] <= now - HOUR:
            events.popleft()
        if events and len(events) >= self.per_hour:
            raise TooMany(f"at most {self.per_hour} anonymous launches per hour from one "
                          "address (rees.anonymous.launches_per_hour); try again later",
                          retry_after=events[0] + HOUR - now)

    def record(self, key: str) -> None:
        """Count one event of ``key`` (a launch that went ahead)."""
        if self.per_hour <= 0:
            return
        now = self.clock()
        self.events[key].append(now)
        if len(self.events) > 100_000:  # forget idle addresses rather than grow forever
            for stale in [k for k, v in self.events.items() if not v or v[-1] <= now - HOUR]:
                del self.events[stale]


def check_cap(in_use: int, cap: int, what: str, setting: str, retry_after: int = 60) -> None:
    """Refuse one more when ``in_use`` has reached ``cap`` (0: no cap)."""
    if cap and in_use >= cap:
        raise TooMany(f"{what}: all {cap} are in use ({setting}); try again when one is "
                      "stopped or culled", retry_after=retry_after)
