"""``rees.hpc.*``: the Slurm launch target as admins allow it, validated like every setting.

Kept apart from ``tljh_rees/settings.py`` (which only calls :func:`read_hpc`) so the
cluster target is one package. The same dataclass travels to the Hub's spawner as a dict
(``to_dict`` / ``from_dict``), as the add-on services do.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

RUNTIMES = ("charliecloud", "apptainer")
# ch-run runs a squashfs file through squashfuse (needs /dev/fuse for the job's user)
# or an unpacked directory (needs nothing but unprivileged user namespaces).
CHARLIECLOUD_FORMATS = ("directory", "squashfs")
_WALLTIME_RE = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$")
_PARTITION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_UNIX_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def walltime_minutes(value) -> int:
    """Minutes from ``90`` (minutes), ``1:30:00`` (h:mm:ss) or ``1-00:00:00``; whole
    minutes only (``1:30`` is not accepted: Slurm would read it as minutes:seconds)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int) or str(value).strip().isdigit():
        minutes = int(str(value).strip())
    else:
        m = _WALLTIME_RE.match(str(value).strip())
        if not m:
            raise ValueError(value)
        days, hours, mins, secs = (int(g) if g else 0 for g in m.groups())
        if mins > 59 or secs:
            raise ValueError(value)
        minutes = days * 1440 + hours * 60 + mins
    if minutes < 1:
        raise ValueError(value)
    return minutes


def format_walltime(minutes: int) -> str:
    """Slurm's ``[D-]HH:MM:00`` form."""
    days, rest = divmod(minutes, 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


@dataclass(frozen=True)
class HpcSettings:
    enabled: bool = False
    partitions: tuple[str, ...] = ()  # allowed; the first is the default
    walltimes: tuple[int, ...] = (60,)  # minutes users may choose; the first is the default
    max_cpus: int = 1
    max_memory: int = 2 * 1024**3  # bytes
    image_dir: str = ""  # on the filesystem the Hub and the nodes share
    runtime: str = "charliecloud"
    charliecloud_format: str = "directory"
    unix_user: str = "jupyter-{username}"  # TLJH's convention
    create_users: bool = False  # useradd on the Hub's machine when missing (single node)
    slurm_conf: str = ""  # "" for Slurm's own default (/etc/slurm/slurm.conf)
    queue_timeout: int = 300  # seconds a job may wait in the queue before it is cancelled
    poll_interval: int = 30  # seconds between the Hub's checks of a running job

    def to_dict(self) -> dict:
        """Plain JSON values (lists, not tuples): it travels in the service's config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict) -> HpcSettings:
        raw = dict(raw or {})
        for key in ("partitions", "walltimes"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def unix_name(self, hub_user: str) -> str:
        return self.unix_user.format(username=hub_user)


KNOWN = set(HpcSettings.__dataclass_fields__)


def read_hpc(r, raw: dict, path: str) -> HpcSettings:
    """``rees.hpc`` through the settings' reader ``r`` (its ``get``, ``unknown`` and
    ``problems``), with the checks of ``tljh_rees.settings``."""
    from ..settings import (
        _absolute_path,
        _bool,
        _one_of,
        _positive_int,
        _string,
        parse_size,
    )

    r.unknown(raw, KNOWN, path)
    d = HpcSettings()
    enabled = r.get(raw, "enabled", path, False, _bool, "true or false")

    def _partitions(value) -> tuple[str, ...]:
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value or not all(
                isinstance(v, str) and _PARTITION_RE.match(v) for v in value):
            raise ValueError(value)
        return tuple(value)

    def _walltimes(value) -> tuple[int, ...]:
        value = value if isinstance(value, list) else [value]
        if not value:
            raise ValueError(value)
        return tuple(walltime_minutes(v) for v in value)

    def _unix_user(value) -> str:
        text = _string(value)
        try:
            example = text.format(username="alice")
        except (KeyError, IndexError, ValueError):
            raise ValueError(value) from None
        if "{username}" not in text or not _UNIX_NAME_RE.match(example):
            raise ValueError(value)
        return text

    settings = HpcSettings(
        enabled=enabled,
        partitions=r.get(raw, "partitions", path, (), _partitions,
                         "a list of Slurm partition names, like [debug, interactive]"),
        walltimes=r.get(raw, "walltimes", path, d.walltimes, _walltimes,
                        "a list of walltimes like ['1:00:00', 30] (h:mm:ss or minutes)"),
        max_cpus=r.get(raw, "max_cpus", path, d.max_cpus, _positive_int, "a whole number ≥ 1"),
        max_memory=r.get(raw, "max_memory", path, d.max_memory, parse_size, "a size like 8G"),
        image_dir=r.get(raw, "image_dir", path, "", _absolute_path,
                        "an absolute directory path on the filesystem the nodes share"),
        runtime=r.get(raw, "runtime", path, d.runtime, _one_of(*RUNTIMES),
                      " or ".join(RUNTIMES)),
        charliecloud_format=r.get(raw, "charliecloud_format", path, d.charliecloud_format,
                                  _one_of(*CHARLIECLOUD_FORMATS),
                                  " or ".join(CHARLIECLOUD_FORMATS)),
        unix_user=r.get(raw, "unix_user", path, d.unix_user, _unix_user,
                        "a unix user name pattern containing {username}, like "
                        "jupyter-{username}"),
        create_users=r.get(raw, "create_users", path, False, _bool, "true or false"),
        slurm_conf=r.get(raw, "slurm_conf", path, "", _absolute_path,
                         "an absolute path to slurm.conf"),
        queue_timeout=r.get(raw, "queue_timeout", path, d.queue_timeout, _positive_int,
                            "seconds, a whole number ≥ 1"),
        poll_interval=r.get(raw, "poll_interval", path, d.poll_interval, _positive_int,
                            "seconds, a whole number ≥ 1"),
    )
    if enabled:
        for key in ("partitions", "image_dir"):
            if not raw.get(key):
                r.problems.append(f"{path}.{key}: required when {path}.enabled is true")
    return settings
