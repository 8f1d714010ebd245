"""Where a user's server runs: "this machine" or the cluster, with what they ask of it.

The one place that checks a user's cluster request against ``rees.hpc``: the spawn
form, the Hub's API (``user_options``) and the applications API all end here. A bad
choice is refused naming the field and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from .settings import HpcSettings, format_walltime, walltime_minutes

TARGET_FIELD = "target"
LOCAL, CLUSTER = "this-machine", "cluster"
FIELDS = {TARGET_FIELD, "partition", "walltime", "cpus", "memory"}


@dataclass(frozen=True)
class ClusterRequest:
    partition: str
    walltime: int  # minutes
    cpus: int
    memory: int  # bytes

    @property
    def slurm_time(self) -> str:
        return format_walltime(self.walltime)

    @property
    def slurm_memory(self) -> str:
        return f"{max(1, self.memory // 1024**2)}M"


def cluster_request(options: dict, hpc: HpcSettings) -> ClusterRequest | None:
    """The cluster request in ``options`` (None: this machine). Cluster fields given
    without ``target: cluster`` are refused rather than silently ignored."""
    target = options.get(TARGET_FIELD) or LOCAL
    if target not in (LOCAL, CLUSTER):
        raise InputError(TARGET_FIELD, f"expected {LOCAL!r} or {CLUSTER!r}, got {target!r}")
    extra = sorted((FIELDS - {TARGET_FIELD}) & set(options))
    if target == LOCAL:
        if extra:
            raise InputError(extra[0], f"only for target {CLUSTER!r}; this server runs on "
                                       "this machine")
        return None
    if not hpc.enabled:
        raise InputError(TARGET_FIELD, "this site runs no cluster target (rees.hpc.enabled "
                                       "is false); choose 'this-machine'")
    return ClusterRequest(_partition(options, hpc), _walltime(options, hpc),
                          _cpus(options, hpc), _memory(options, hpc))


def _partition(options: dict, hpc: HpcSettings) -> str:
    partition = options.get("partition") or hpc.partitions[0]
    if partition not in hpc.partitions:
        raise InputError("partition", f"{partition!r} is not allowed; choose one of "
                                      f"{', '.join(hpc.partitions)}")
    return partition


def _walltime(options: dict, hpc: HpcSettings) -> int:
    raw = options.get("walltime")
    if raw in (None, ""):
        return hpc.walltimes[0]
    allowed = ", ".join(format_walltime(m) for m in hpc.walltimes)
    try:
        minutes = walltime_minutes(raw)
    except ValueError:
        raise InputError("walltime", f"expected a walltime like 01:00:00 or a number of "
                                     f"minutes, got {raw!r}; allowed: {allowed}") from None
    if minutes not in hpc.walltimes:
        longest = max(hpc.walltimes)
        why = "longer than allowed" if minutes > longest else "not one of the choices"
        raise InputError("walltime", f"{format_walltime(minutes)} is {why}; choose one of "
                                     f"{allowed}")
    return minutes


def _cpus(options: dict, hpc: HpcSettings) -> int:
    raw = options.get("cpus")
    if raw in (None, ""):
        return 1
    try:
        cpus = int(str(raw))
    except ValueError:
        cpus = 0
    if isinstance(raw, bool) or cpus < 1:
        raise InputError("cpus", f"expected a whole number of CPUs ≥ 1, got {raw!r}")
    if cpus > hpc.max_cpus:
        raise InputError("cpus", f"{cpus} is more than allowed; at most {hpc.max_cpus}")
    return cpus


def _memory(options: dict, hpc: HpcSettings) -> int:
    from ..settings import format_size, parse_size

    raw = options.get("memory")
    if raw in (None, ""):
        return min(hpc.max_memory, 1024**3)
    try:
        memory = parse_size(raw)
    except (TypeError, ValueError):
        raise InputError("memory", f"expected a size like 2G, got {raw!r}") from None
    if memory > hpc.max_memory:
        raise InputError("memory", f"{format_size(memory)} is more than allowed; at most "
                                   f"{format_size(hpc.max_memory)}")
    return memory
