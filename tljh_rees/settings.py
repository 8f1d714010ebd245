"""The ``rees`` section of the TLJH configuration, validated into typed settings.

Every key is checked here and only here. A problem is reported as a
:class:`SettingsError` whose message names the key and the expected form, e.g.
``rees.profiles.small.memory: expected a size like 2G, got 'banana'``.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .hpc.settings import HpcSettings, read_hpc
from .swarm.config import SwarmSettings, parse_swarm

DEFAULT_STATE_DIR = "/opt/tljh/state/rees"

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_VOLUME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]+$")  # what Docker accepts as a volume name
_BUILD_ARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIN_MEMORY = 6 * 1024**2  # Docker refuses a memory limit below 6M


class SettingsError(ValueError):
    """One or more invalid ``rees`` settings; ``problems`` lists each message."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid tljh-rees configuration:\n  " + "\n  ".join(problems))


def parse_size(value: Any) -> int:
    """Bytes from ``2G``, ``512M``, ``1.5GiB`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(value)
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise ValueError(value)
    number = float(match.group(1)) * _SIZE_FACTORS[match.group(2).upper()]
    if number <= 0:
        raise ValueError(value)
    return int(number)


def format_size(size: int) -> str:
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_FACTORS[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def readable_size(size: int) -> str:
    """Bytes as a person reads them, rounded: ``23.5G``, ``512M`` (binary units, as
    limits are); ``format_size`` is the exact form, for values people wrote."""
    for unit in ("T", "G", "M"):
        factor = _SIZE_FACTORS[unit]
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + unit
    return f"{size}B"


@dataclass(frozen=True)
class Profile:
    """A machine profile: the resources a server gets."""

    name: str
    cpu: float | None = None
    memory: int | None = None  # bytes
    description: str = ""

    @property
    def label(self) -> str:
        parts = []
        if self.cpu:
            parts.append(f"{self.cpu:g} CPU")
        if self.memory:
            parts.append(f"{format_size(self.memory)} RAM")
        limits = ", ".join(parts) or "no limits"
        return f"{self.description or self.name} ({limits})"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "cpu": self.cpu,
            "memory": self.memory,
            "memory_text": format_size(self.memory) if self.memory else None,
            "description": self.description,
            "label": self.label,
        }


@dataclass(frozen=True)
class DataMount:
    """A host directory an admin shares with every server (e.g. a large dataset)."""

    name: str
    source: str
    target: str
    readonly: bool = True


@dataclass(frozen=True)
class BuildSettings:
    concurrency: int = 1
    base_image: str = ""
    build_args: dict = field(default_factory=dict)
    ca_bundle: str = ""
    allow_local_repos: bool = False
    log_max_bytes: int = 4 * 1024**2
    timeout: int = 3600


# BinderHub's provider ids, in its order; all but ``git`` have a base URL to point at.
BINDER_PROVIDERS = ("gh", "gist", "git", "gl", "zenodo", "figshare", "hydroshare",
                    "dataverse", "ckan")


@dataclass(frozen=True)
class BinderSettings:
    providers: tuple[str, ...] = ()  # () = all
    build_from_links: str = "builders"
    cors_allow_origin: str = ""
    base_urls: dict = field(default_factory=dict)  # provider id -> URL


@dataclass(frozen=True)
class AnonymousSettings:
    enabled: bool = False
    max_servers: int = 10
    launches_per_hour: int = 30  # per client address


@dataclass(frozen=True)
class QuotaSettings:
    """``rees.quotas``: 0 means no quota."""

    servers_per_user: int = 0
    queued_builds_per_user: int = 3
    launches_per_environment: int = 0  # launches of one environment starting at once
    queue_length: int = 50  # builds waiting, over all users


@dataclass(frozen=True)
class StorageSettings:
    volume_name: str = "rees-home-{username}"
    path: str = "work"


@dataclass(frozen=True)
class ServiceSettings:
    """An add-on service kind as this site offers it (``rees.services.<name>``)."""

    name: str
    enabled: bool = False
    version: str = ""
    memory: int | None = None  # bytes, the service container's limit
    cpu: float | None = None
    persistent: bool = True
    params: dict = field(default_factory=dict)  # the admin's defaults, checked, complete

    def to_dict(self) -> dict:
        return {"enabled": self.enabled, "version": self.version, "memory": self.memory,
                "cpu": self.cpu, "persistent": self.persistent, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, name: str, raw: dict) -> ServiceSettings:
        return cls(name=name, enabled=bool(raw.get("enabled")),
                   version=str(raw.get("version") or ""), memory=raw.get("memory"),
                   cpu=raw.get("cpu"), persistent=bool(raw.get("persistent", True)),
                   params=dict(raw.get("params") or {}))


@dataclass(frozen=True)
class GcSettings:
    """Disk garbage collection (``rees.gc``)."""

    high: int = 85  # percent of the engine's data disk
    low: int = 70
    max_image_bytes: int = 0  # 0: no cap
    build_cache_hours: int = 72
    keep_days: int = 30
    interval: int = 600  # seconds


@dataclass(frozen=True)
class Settings:
    state_dir: str = DEFAULT_STATE_DIR
    service_ip: str = "127.0.0.1"
    service_port: int = 6789
    hub_ip: str = ""  # "" means: the Docker bridge address, found at hub start
    default_image: str = ""  # started when no environment is chosen ("" = choose one)
    base_image_mirror: str = "http://deb.debian.org/debian"
    builds: BuildSettings = field(default_factory=BuildSettings)
    profiles: tuple[Profile, ...] = ()
    default_profile: str = ""
    storage: StorageSettings = field(default_factory=StorageSettings)
    data_mounts: tuple[DataMount, ...] = ()
    hpc: HpcSettings = field(default_factory=HpcSettings)  # the Slurm target (tljh_rees/hpc)
    gallery_show: str = "all"
    binder: BinderSettings = field(default_factory=BinderSettings)
    export_registry: str = ""  # oras:// prefix every HPC export is also pushed to
    anonymous: AnonymousSettings = field(default_factory=AnonymousSettings)
    quotas: QuotaSettings = field(default_factory=QuotaSettings)
    template_images: tuple[str, ...] = ()  # plain images templates may use
    builders: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    services: tuple[ServiceSettings, ...] = ()  # one per known kind, enabled or not
    gc: GcSettings = field(default_factory=GcSettings)
    lab_extension: bool = True  # "Make this folder an environment" in every server
    swarm: SwarmSettings = field(default_factory=SwarmSettings)  # multi-node (swarm/)

    def service(self, name: str) -> ServiceSettings | None:
        return next((s for s in self.services if s.name == name), None)

    def profile(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)


# Defaults written by ``tljh_config_post_install`` (never over an admin's value).
DEFAULTS: dict[str, Any] = {
    "state_dir": DEFAULT_STATE_DIR,
    "builds": {"concurrency": 1, "allow_local_repos": False},
    "profiles": {
        "small": {"cpu": 1, "memory": "2G", "description": "Small"},
    },
    "default_profile": "small",
    "storage": {"volume_name": "rees-home-{username}", "path": "work"},
    "gallery": {"show": "all"},
}


class _Reader:
    """Walks the raw section, collecting every problem instead of stopping at the first."""

    def __init__(self, raw: Any):
        self.problems: list[str] = []
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.problems.append(f"rees: expected a mapping of settings, got {raw!r}")
            raw = {}
        self.raw = raw

    def section(self, data: dict, key: str, path: str) -> dict:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problems.append(f"{path}.{key}: expected a group of settings, got {value!r}")
            return {}
        return value

    def unknown(self, data: dict, known: set[str], path: str):
        for key in sorted(set(data) - known):
            self.problems.append(
                f"{path}.{key}: unknown setting (known here: {', '.join(sorted(known))})"
            )

    def get(self, data, key, path, default, check, expected):
        if key not in data or data[key] is None:
            return default
        value = data[key]
        try:
            return check(value)
        except (TypeError, ValueError):
            self.problems.append(f"{path}.{key}: expected {expected}, got {value!r}")
            return default


def _positive_int(value) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(value)
    return int(value)


def _whole(value) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 0:
        raise ValueError(value)
    return int(value)


def _positive_float(value) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if not number > 0:
        raise ValueError(value)
    return number


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise ValueError(value)


def _string(value) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError(value)
    return str(value)


def _absolute_path(value) -> str:
    path = _string(value)
    if not os.path.isabs(path):
        raise ValueError(value)
    return path


def _users(value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(value)
    return tuple(value)


def _relative_path(value) -> str:
    text = _string(value)
    path = text.strip("/")
    if text.startswith("/") or not path or ".." in path.split("/"):
        raise ValueError(value)
    return path


def _volume_template(value) -> str:
    text = _string(value)
    if "{username}" not in text:
        raise ValueError(value)
    try:
        example = text.format(username="alice")
    except (KeyError, IndexError, ValueError):
        raise ValueError(value) from None
    if not _VOLUME_RE.match(example):
        raise ValueError(value)
    return text


def _one_of(*options: str):
    def check(value) -> str:
        if value not in options:
            raise ValueError(value)
        return value
    return check


def _ip(value) -> str:
    return str(ipaddress.ip_address(_string(value).strip()))


def _url(value) -> str:
    text = _string(value).strip()
    if not re.match(r"^https?://[^/\s]+", text):
        raise ValueError(value)
    return text


def _memory(value) -> int:
    size = parse_size(value)
    if size < MIN_MEMORY:
        raise ValueError(value)
    return size


def _scalar(value) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise ValueError(value)
    return str(value)


def machine_memory() -> int | None:
    """Bytes of memory on this machine (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def parse_settings(raw: Any, cpu_count: int | None = None,
                   memory_total: int | None = None) -> Settings:
    """Validate the raw ``rees`` section (as TLJH's config loader returns it)."""
    r = _Reader(raw)
    data = r.raw
    p = "rees"
    r.unknown(
        data,
        {"state_dir", "service", "hpc", "hub_ip", "default_image", "base_image_mirror", "builds", "profiles",
         "default_profile", "storage", "data_mounts", "gallery", "binder", "export",
         "anonymous", "templates", "builders", "services",
         "admins", "gc", "quotas", "lab_extension", "swarm"},
        p,
    )

    service = r.section(data, "service", p)
    r.unknown(service, {"ip", "port"}, f"{p}.service")
    port_expect = "a port number from 1 to 65535"

    def _port(v):
        v = _positive_int(v)
        if v > 65535:
            raise ValueError(v)
        return v

    builds_raw = r.section(data, "builds", p)
    bp = f"{p}.builds"
    r.unknown(builds_raw, {"concurrency", "base_image", "build_args", "ca_bundle",
                           "allow_local_repos", "log_max_bytes", "timeout"}, bp)
    build_args = {}
    for key, value in r.section(builds_raw, "build_args", bp).items():
        if not _BUILD_ARG_RE.match(str(key)):
            r.problems.append(f"{bp}.build_args.{key}: expected a build argument name "
                              f"(letters, digits and _), got {key!r}")
            continue
        arg = r.get({key: value}, key, f"{bp}.build_args", None, _scalar, "a text value")
        if arg is not None:
            build_args[str(key)] = arg
    ca_bundle = r.get(builds_raw, "ca_bundle", bp, "", _absolute_path, "an absolute file path")
    if ca_bundle and not os.path.isfile(ca_bundle):
        r.problems.append(f"{bp}.ca_bundle: expected an existing file, got {ca_bundle!r}")
    builds = BuildSettings(
        concurrency=r.get(builds_raw, "concurrency", bp, 1, _positive_int, "a whole number ≥ 1"),
        base_image=r.get(builds_raw, "base_image", bp, "", _string, "an image name"),
        build_args=build_args,
        ca_bundle=ca_bundle,
        allow_local_repos=r.get(builds_raw, "allow_local_repos", bp, False, _bool, "true or false"),
        log_max_bytes=r.get(builds_raw, "log_max_bytes", bp, 4 * 1024**2, parse_size,
                            "a size like 4M"),
        timeout=r.get(builds_raw, "timeout", bp, 3600, _positive_int, "seconds, a whole number ≥ 1"),
    )

    profiles = []
    for name, prof in r.section(data, "profiles", p).items():
        pp = f"{p}.profiles.{name}"
        if not _NAME_RE.match(str(name)):
            r.problems.append(f"{pp}: expected a profile name of lowercase letters, digits, "
                              "'-', '_' or '.'")
            continue
        if not isinstance(prof, dict):
            r.problems.append(f"{pp}: expected cpu, memory and description, got {prof!r}")
            continue
        r.unknown(prof, {"cpu", "memory", "description"}, pp)
        cpu = r.get(prof, "cpu", pp, None, _positive_float, "a number of CPUs like 1 or 0.5")
        if cpu and cpu_count and cpu > cpu_count:
            r.problems.append(f"{pp}.cpu: expected at most {cpu_count} (the CPUs of this "
                              f"machine), got {cpu:g}")
        memory = r.get(prof, "memory", pp, None, _memory, "a size like 2G (at least 6M)")
        if memory and memory_total and memory > memory_total:
            r.problems.append(f"{pp}.memory: expected at most {format_size(memory_total)} (the "
                              f"memory of this machine), got {format_size(memory)}")
        profiles.append(Profile(
            name=str(name),
            cpu=cpu,
            memory=memory,
            description=r.get(prof, "description", pp, "", _string, "text"),
        ))

    default_profile = r.get(data, "default_profile", p, "", _string, "a profile name")
    if default_profile and default_profile not in {prof.name for prof in profiles}:
        r.problems.append(f"{p}.default_profile: expected one of the profiles "
                          f"({', '.join(x.name for x in profiles) or 'none defined'}), "
                          f"got {default_profile!r}")

    storage_raw = r.section(data, "storage", p)
    r.unknown(storage_raw, {"volume_name", "path"}, f"{p}.storage")
    storage = StorageSettings(
        volume_name=r.get(storage_raw, "volume_name", f"{p}.storage", "rees-home-{username}",
                          _volume_template,
                          "a Docker volume name containing {username}, like rees-home-{username}"),
        path=r.get(storage_raw, "path", f"{p}.storage", "work", _relative_path,
                   "a folder relative to the home directory, like work"),
    )

    mounts = []
    for name, mount in r.section(data, "data_mounts", p).items():
        mp = f"{p}.data_mounts.{name}"
        if not isinstance(mount, dict):
            r.problems.append(f"{mp}: expected source, target and readonly, got {mount!r}")
            continue
        r.unknown(mount, {"source", "target", "readonly"}, mp)
        source = r.get(mount, "source", mp, "", _absolute_path, "an absolute host path")
        target = r.get(mount, "target", mp, "", _absolute_path, "an absolute path in the server")
        for key, value in (("source", source), ("target", target)):
            if not value and key not in mount:
                r.problems.append(f"{mp}.{key}: required, expected an absolute path")
        mounts.append(DataMount(str(name), source, target,
                                r.get(mount, "readonly", mp, True, _bool, "true or false")))

    export = r.section(data, "export", p)
    r.unknown(export, {"registry"}, f"{p}.export")

    def _oras_prefix(v):
        v = _string(v)
        if not v.startswith("oras://") or len(v) <= len("oras://"):
            raise ValueError(v)
        return v

    gallery = r.section(data, "gallery", p)
    r.unknown(gallery, {"show"}, f"{p}.gallery")

    def _show(v):
        if v not in ("all", "public"):
            raise ValueError(v)
        return v

    binder = _binder_settings(r, r.section(data, "binder", p), f"{p}.binder")

    anonymous_raw = r.section(data, "anonymous", p)
    ap = f"{p}.anonymous"
    r.unknown(anonymous_raw, {"enabled", "max_servers", "launches_per_hour"}, ap)
    anonymous = AnonymousSettings(
        enabled=r.get(anonymous_raw, "enabled", ap, False, _bool, "true or false"),
        max_servers=r.get(anonymous_raw, "max_servers", ap, 10, _whole, "a whole number ≥ 0 "
                          "(0: no cap)"),
        launches_per_hour=r.get(anonymous_raw, "launches_per_hour", ap, 30, _whole,
                                "a whole number ≥ 0 of launches per client address "
                                "(0: no cap)"),
    )
    templates = r.section(data, "templates", p)
    r.unknown(templates, {"allowed_images"}, f"{p}.templates")

    lab_extension = r.section(data, "lab_extension", p)
    r.unknown(lab_extension, {"enabled"}, f"{p}.lab_extension")

    quotas_raw = r.section(data, "quotas", p)
    qp = f"{p}.quotas"
    r.unknown(quotas_raw, {"servers_per_user", "queued_builds_per_user",
                           "launches_per_environment", "queue_length"}, qp)
    defaults = QuotaSettings()
    quotas = QuotaSettings(**{
        key: r.get(quotas_raw, key, qp, getattr(defaults, key), _whole,
                   "a whole number ≥ 0 (0: no quota)")
        for key in ("servers_per_user", "queued_builds_per_user",
                    "launches_per_environment", "queue_length")})

    settings = Settings(
        state_dir=r.get(data, "state_dir", p, DEFAULT_STATE_DIR, _absolute_path,
                        "an absolute directory path"),
        service_ip=r.get(service, "ip", f"{p}.service", "127.0.0.1", _ip, "an IP address"),
        service_port=r.get(service, "port", f"{p}.service", 6789, _port, port_expect),
        hub_ip=r.get(data, "hub_ip", p, "", _ip, "an IP address"),
        default_image=r.get(data, "default_image", p, "", _string, "an image name"),
        base_image_mirror=r.get(data, "base_image_mirror", p, "http://deb.debian.org/debian",
                                _url, "a Debian mirror URL (http:// or https://)"),
        builds=builds,
        profiles=tuple(profiles),
        default_profile=default_profile,
        storage=storage,
        data_mounts=tuple(mounts),
        hpc=read_hpc(r, r.section(data, "hpc", p), f"{p}.hpc"),
        gallery_show=r.get(gallery, "show", f"{p}.gallery", "all", _show, "all or public"),
        binder=binder,
        export_registry=r.get(export, "registry", f"{p}.export", "", _oras_prefix,
                              "an ORAS registry prefix like oras://registry.example.org/team"),
        anonymous=anonymous,
        quotas=quotas,
        template_images=r.get(templates, "allowed_images", f"{p}.templates", (), _users,
                              "a list of image names, like jupyter/base-notebook:2024"),
        builders=r.get(data, "builders", p, (), _users, "a list of user names"),
        admins=r.get(data, "admins", p, (), _users, "a list of user names"),
        services=_service_settings(r, r.section(data, "services", p), f"{p}.services",
                                   cpu_count, memory_total),
        gc=_gc_settings(r, r.section(data, "gc", p), f"{p}.gc"),
        lab_extension=r.get(lab_extension, "enabled", f"{p}.lab_extension", True, _bool,
                            "true or false"),
        swarm=parse_swarm(r, r.section(data, "swarm", p), f"{p}.swarm",
                          {"bool": _bool, "port": _port, "string": _string}, tuple(profiles)),
    )
    if settings.hpc.enabled and settings.swarm.enabled:
        r.problems.append(f"{p}.hpc.enabled: the Slurm target and multi-node mode "
                          f"({p}.swarm.enabled) cannot both be on yet; turn one off")
    if r.problems:
        raise SettingsError(r.problems)
    return settings


def _percent(value) -> int:
    if isinstance(value, bool) or int(value) != value or not 1 <= int(value) <= 99:
        raise ValueError(value)
    return int(value)


def _size_or_zero(value) -> int:
    if not isinstance(value, bool) and value in (0, "0"):
        return 0
    return parse_size(value)


def _gc_settings(r: _Reader, raw: dict, gp: str) -> GcSettings:
    r.unknown(raw, {"high", "low", "max_image_bytes", "build_cache_hours", "keep_days",
                    "interval"}, gp)
    percent = "a whole percent from 1 to 99"
    high = r.get(raw, "high", gp, 85, _percent, percent)
    low = r.get(raw, "low", gp, 70, _percent, percent)
    if low >= high:
        r.problems.append(f"{gp}.low: expected less than {gp}.high ({high}), got {low}")
    return GcSettings(
        high=high, low=low,
        max_image_bytes=r.get(raw, "max_image_bytes", gp, 0, _size_or_zero,
                              "a size like 50G (0: no cap)"),
        build_cache_hours=r.get(raw, "build_cache_hours", gp, 72, _whole,
                                "a whole number of hours ≥ 0 (0: never prune)"),
        keep_days=r.get(raw, "keep_days", gp, 30, _whole,
                        "a whole number of days ≥ 0 (0: keep every log and export)"),
        interval=r.get(raw, "interval", gp, 600, _positive_int,
                       "seconds, a whole number ≥ 1"),
    )


def _binder_settings(r: _Reader, raw: dict, bp: str) -> BinderSettings:
    r.unknown(raw, {"providers", "build_from_links", "cors_allow_origin", "base_urls"}, bp)

    def _providers(value):
        value = _users(value)
        if any(v not in BINDER_PROVIDERS for v in value):
            raise ValueError(value)
        return value

    def _origin(value):
        text = _string(value).strip()
        if text not in ("", "*") and not re.match(r"^https?://[^/\s]+$", text):
            raise ValueError(value)
        return text

    base_urls = {}
    for key, value in r.section(raw, "base_urls", bp).items():
        if key not in BINDER_PROVIDERS or key == "git":
            r.problems.append(f"{bp}.base_urls.{key}: expected one of "
                              f"{', '.join(p for p in BINDER_PROVIDERS if p != 'git')}")
            continue
        url = r.get({key: value}, key, f"{bp}.base_urls", None, _url, "an http(s):// URL")
        if url:
            base_urls[key] = url.rstrip("/")
    return BinderSettings(
        providers=r.get(raw, "providers", bp, (), _providers,
                        f"a list of provider ids among {', '.join(BINDER_PROVIDERS)}"),
        build_from_links=r.get(raw, "build_from_links", bp, "builders",
                               _one_of("builders", "users"), "builders or users"),
        cors_allow_origin=r.get(raw, "cors_allow_origin", bp, "", _origin,
                                "'*' or one origin like https://docs.example.org"),
        base_urls=base_urls,
    )


def _service_settings(r: _Reader, raw: dict, sp: str, cpu_count: int | None,
                      memory_total: int | None) -> tuple[ServiceSettings, ...]:
    from .errors import InputError
    from .services.kinds import KINDS  # the kinds use this module's sizes

    r.unknown(raw, set(KINDS), sp)
    result = []
    for name, kind_class in KINDS.items():
        kind, kp = kind_class(), f"{sp}.{name}"
        entry = r.section(raw, name, sp)
        r.unknown(entry, {"enabled", "version", "memory", "cpu", "persistent", "params"}, kp)

        def _version(v, kind=kind):
            if str(v) not in kind.versions:
                raise ValueError(v)
            return str(v)

        memory = r.get(entry, "memory", kp, kind.default_memory, _memory,
                       "a size like 256M (at least 6M)")
        if memory_total and memory > memory_total:
            r.problems.append(f"{kp}.memory: expected at most {format_size(memory_total)} "
                              f"(the memory of this machine), got {format_size(memory)}")
        cpu = r.get(entry, "cpu", kp, kind.default_cpu, _positive_float,
                    "a number of CPUs like 1 or 0.5")
        if cpu_count and cpu > cpu_count:
            r.problems.append(f"{kp}.cpu: expected at most {cpu_count} (the CPUs of this "
                              f"machine), got {cpu:g}")
        try:
            params = kind.check_params(entry.get("params"), f"{kp}.params")
        except InputError as e:
            r.problems.append(str(e))
            params = kind.check_params({})
        if kind.min_memory(params) > memory:
            r.problems.append(f"{kp}.memory: expected at least "
                              f"{format_size(kind.min_memory(params))} for these params, "
                              f"got {format_size(memory)}")
        result.append(ServiceSettings(
            name=name,
            enabled=r.get(entry, "enabled", kp, False, _bool, "true or false"),
            version=r.get(entry, "version", kp, kind.newest(), _version,
                          f"one of {', '.join(kind.versions)}"),
            memory=memory, cpu=cpu,
            persistent=r.get(entry, "persistent", kp, True, _bool, "true or false"),
            params=params,
        ))
    return tuple(result)


def merge_defaults(config: dict, defaults: dict = DEFAULTS) -> bool:
    """Fill ``defaults`` into ``config`` without replacing any existing key.

    Returns whether anything was added. Nested groups are merged key by key, but a
    group the admin already has (e.g. ``profiles``) is left as the admin wrote it, and
    so is the choice among them: ``default_profile`` is only filled in together with
    the default profiles.
    """
    changed = False
    admin_profiles = "profiles" in config
    for key, value in defaults.items():
        if key == "default_profile" and admin_profiles:
            continue
        if key not in config:
            config[key] = copy.deepcopy(value)  # never share DEFAULTS' own dicts
            changed = True
        elif isinstance(value, dict) and isinstance(config[key], dict) and key != "profiles":
            changed |= merge_defaults(config[key], value)
    return changed
