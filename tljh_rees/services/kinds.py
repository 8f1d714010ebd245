"""The catalog of add-on service kinds (a database next to each server), and what a site
offers of them.

A :class:`ServiceKind` is a small class with hooks, one subclass per kind (as
repo2docker's build packs are): which versions it offers (exactly what Debian bookworm
packages), its packages, parameters, start command, health check, where its data lives
and the environment a notebook server gets to reach it. :data:`KINDS` registers them by
name. :class:`ServiceCatalog` is a site's choice among them (``rees.services``): which
are enabled, at which version, with which default parameters and limits; templates'
``services`` lists are checked by :meth:`ServiceCatalog.check`.

The password is never a parameter: the launcher makes one per server and gives it to
the service container as ``REES_SERVICE_PASSWORD`` only; commands here refer to it by
that name, never by value.
"""

from __future__ import annotations

from urllib.parse import quote

from ..errors import InputError
from ..settings import ServiceSettings, format_size, parse_size, readable_size
from . import scripts
from .params import Bool, Choice, Int, Name, Param, Size, check_params

PASSWORD_ENV = "REES_SERVICE_PASSWORD"
START_SCRIPT = "/usr/local/bin/rees-service-start"
MAX_SERVICES = 20  # per template
# What a notebook server keeps at least, once its services have their share of its limits.
SERVER_MIN_MEMORY = 256 * 1024**2
SERVER_MIN_CPU = 0.25


class ServiceKind:
    """One kind of add-on service; subclasses fill in the attributes and hooks."""

    name = ""
    versions: tuple[str, ...] = ()
    port = 0
    user = ""  # the unprivileged user the server runs as (made by the Debian package)
    uid = 999  # fixed (made before the package's own) so a tmpfs can be given to it
    home = "/var/lib/rees-service"
    role = ""  # the database role a notebook connects as, where the kind has roles
    data_dir = "/var/lib/rees-service/data"  # persistent data: mount a volume here
    run_dir = "/run/rees-service"  # sockets and runtime files, owned by ``user``
    stop_signal = "SIGTERM"
    params: dict[str, Param] = {}
    client_packages: dict[str, list[str]] = {}
    default_memory = 256 * 1024**2
    default_cpu = 0.5
    start_template = ""

    def tmpfs_options(self) -> str:
        """``docker run --tmpfs DATA_DIR:<these>`` for data that need not persist."""
        return f"uid={self.uid},gid={self.uid},mode=0700"

    def newest(self) -> str:
        return max(self.versions, key=lambda v: tuple(int(x) for x in v.split(".")))

    def packages(self, version: str) -> list[str]:
        """The Debian packages to install for ``version``."""
        raise NotImplementedError

    def build_steps(self, version: str) -> list[str]:
        """Shell commands run as root right after the packages are installed."""
        return []

    def verify_command(self, version: str) -> str:
        """A shell command that fails the build when the packages give another version."""
        raise NotImplementedError

    def start_script(self, version: str) -> str:
        return scripts.render(self.start_template, version=version, port=self.port,
                              data_dir=self.data_dir, run_dir=self.run_dir, role=self.role)

    def check_version(self, version, where: str = "version") -> str:
        if version is None:
            return self.newest()
        if str(version) not in self.versions:
            raise InputError(where, f"{self.name} {version} is not offered; expected one "
                                    f"of {', '.join(self.versions)}")
        return str(version)

    def check_params(self, params, where: str = "params", defaults: dict | None = None) -> dict:
        """``params`` with every default filled in (``defaults`` first, then the kind's);
        a bad or unknown one raises InputError at ``<where>.<name>``."""
        return check_params(self.params, params, where, defaults)

    def min_memory(self, params: dict) -> int:
        """The least memory limit these (checked) parameters work in."""
        return 32 * 1024**2

    def command(self, version: str, params: dict) -> list[str]:
        """The container's command: the start script with the (non-secret) parameters."""
        raise NotImplementedError

    def health_command(self) -> list[str]:
        """Run with ``docker exec``: exits 0 once the service accepts connections."""
        raise NotImplementedError

    def connection_env(self, host: str, password: str, params: dict) -> dict[str, str]:
        """What the notebook server gets to reach the service at ``host``."""
        raise NotImplementedError


class Postgres(ServiceKind):
    name = "postgres"
    versions = ("15",)
    port = 5432
    user = "postgres"
    home = "/var/lib/postgresql"
    role = "notebook"  # the role the notebook connects as: owns its database, no superuser
    stop_signal = "SIGINT"  # PostgreSQL's fast shutdown
    params = {
        "database": Name(default="notebook"),
        "max_connections": Int(default=20, low=5, high=500),
        "shared_buffers": Size(default="32M", low="16M", high="1G"),
    }
    client_packages = {"pip": ["psycopg[binary]>=3.1"]}
    default_memory = 256 * 1024**2
    start_template = scripts.POSTGRES

    def packages(self, version: str) -> list[str]:
        return [f"postgresql-{version}"]

    def build_steps(self, version: str) -> list[str]:
        # the package makes a cluster of its own; ours is made at first start instead
        return [f"rm -rf /var/lib/postgresql/{version}/main /etc/postgresql/{version}/main"]

    def verify_command(self, version: str) -> str:
        return (f"/usr/lib/postgresql/{version}/bin/postgres --version "
                f"| grep -q ' {version}\\.'")

    def min_memory(self, params: dict) -> int:
        return parse_size(params["shared_buffers"]) + 96 * 1024**2

    def command(self, version: str, params: dict) -> list[str]:
        kilobytes = parse_size(params["shared_buffers"]) // 1024
        return [START_SCRIPT, params["database"],
                "-c", f"max_connections={params['max_connections']}",
                "-c", f"shared_buffers={kilobytes}kB"]

    def health_command(self) -> list[str]:
        return ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]

    def connection_env(self, host: str, password: str, params: dict) -> dict[str, str]:
        database = params.get("database") or self.params["database"].default
        url = (f"postgresql://{self.role}:{quote(password, safe='')}@{host}:{self.port}/"
               f"{database}")
        return {"DATABASE_URL": url, "PGHOST": host, "PGPORT": str(self.port),
                "PGUSER": self.role, "PGPASSWORD": password, "PGDATABASE": database}


class Redis(ServiceKind):
    name = "redis"
    versions = ("7",)
    port = 6379
    user = "redis"
    home = "/var/lib/redis"
    params = {
        "maxmemory": Size(default="64M", low="16M", high="2G"),
        "maxmemory_policy": Choice(default="noeviction",
                                   options=("allkeys-lru", "noeviction", "volatile-lru")),
        "appendonly": Bool(default=False),
    }
    client_packages = {"pip": ["redis>=5"]}
    default_memory = 128 * 1024**2
    start_template = scripts.REDIS

    def packages(self, version: str) -> list[str]:
        return ["redis-server"]

    def verify_command(self, version: str) -> str:
        return f"redis-server --version | grep -q ' v={version}\\.'"

    def min_memory(self, params: dict) -> int:
        return parse_size(params["maxmemory"]) + 32 * 1024**2

    def command(self, version: str, params: dict) -> list[str]:
        return [START_SCRIPT, "--maxmemory", str(parse_size(params["maxmemory"])),
                "--maxmemory-policy", params["maxmemory_policy"],
                "--appendonly", "yes" if params["appendonly"] else "no"]

    def health_command(self) -> list[str]:
        # redis-cli takes the password from REDISCLI_AUTH, set here from the container's
        # own environment: the command holds only the variable's name
        return ["sh", "-c", f'REDISCLI_AUTH="${PASSWORD_ENV}" redis-cli -h 127.0.0.1 '
                            f"-p {self.port} ping | grep -qx PONG"]

    def connection_env(self, host: str, password: str, params: dict) -> dict[str, str]:
        return {"REDIS_URL": f"redis://default:{quote(password, safe='')}@{host}:{self.port}/0",
                "REDIS_HOST": host, "REDIS_PORT": str(self.port), "REDIS_PASSWORD": password}


KINDS: dict[str, type[ServiceKind]] = {k.name: k for k in (Postgres, Redis)}


def kind_named(name: str) -> ServiceKind:
    return KINDS[name]()


class ServiceCatalog:
    """What this site offers: the enabled kinds, each at its version, with the admin's
    default parameters, limits and whether its data persists (``rees.services``)."""

    def __init__(self, services: dict[str, ServiceSettings] | None = None):
        self.services = {name: s for name, s in (services or {}).items() if s.enabled}

    @classmethod
    def from_config(cls, config: dict | None) -> ServiceCatalog:
        """From the plain dict hubconfig passes on (``ServiceSettings.to_dict`` by name)."""
        services = {}
        for name, raw in (config or {}).items():
            if name not in KINDS:
                raise ValueError(f"unknown service kind {name!r}")
            services[name] = ServiceSettings.from_dict(name, raw)
        return cls(services)

    def offered(self) -> dict[str, tuple[str, ...]]:
        return {name: (s.version,) for name, s in sorted(self.services.items())}

    def kind(self, name: str) -> ServiceKind:
        return kind_named(name)

    def settings(self, name: str) -> ServiceSettings:
        return self.services[name]

    def needs(self, name: str) -> tuple[int, float]:
        """The memory and CPUs one ``name`` service takes."""
        kind, site = self.kind(name), self.services.get(name)
        return ((site and site.memory) or kind.default_memory,
                (site and site.cpu) or kind.default_cpu)

    def share(self, specs, memory: int | None, cpu: float | None
              ) -> tuple[int | None, float | None]:
        """What a server keeps of its limits once ``specs``' services have theirs: they
        count against the server's, so a template's limits hold for all of it."""
        if not specs:
            return memory, cpu
        used = [self.needs(s["name"]) for s in specs]
        names = ", ".join(f"{s['name']} {readable_size(m)} and {c:g} CPU"
                          for s, (m, c) in zip(specs, used))
        taken_memory, taken_cpu = sum(m for m, _ in used), sum(c for _, c in used)
        if memory is not None:
            if memory - taken_memory < SERVER_MIN_MEMORY:
                raise InputError("limits.memory", f"the services take {names}; with at "
                                 f"least {readable_size(SERVER_MIN_MEMORY)} for the server "
                                 f"itself, give at least "
                                 f"{readable_size(taken_memory + SERVER_MIN_MEMORY)}")
            memory -= taken_memory
        if cpu is not None:
            if cpu - taken_cpu < SERVER_MIN_CPU - 1e-9:
                raise InputError("limits.cpu", f"the services take {names}; with at least "
                                 f"{SERVER_MIN_CPU:g} CPU for the server itself, give at "
                                 f"least {taken_cpu + SERVER_MIN_CPU:g}")
            cpu -= taken_cpu
        return memory, cpu

    def check(self, services, where: str = "services") -> list[dict]:
        """A template's ``[{"name", "version", "params"}]``, normalized: every service
        offered here, its version filled in, its parameters checked and completed."""
        if not isinstance(services, list) or len(services) > MAX_SERVICES:
            raise InputError(where, f"expected a list of at most {MAX_SERVICES} "
                                    "{\"name\", \"version\", \"params\"}")
        checked = []
        for i, service in enumerate(services):
            item = self._check_one(service, f"{where}[{i}]")
            if any(c["name"] == item["name"] for c in checked):
                raise InputError(f"{where}[{i}].name", f"{item['name']} is listed twice; "
                                                       "a server gets one of each service")
            checked.append(item)
        return checked

    def _check_one(self, service, where: str) -> dict:
        if not isinstance(service, dict) or set(service) - {"name", "version", "params"}:
            raise InputError(where, "expected {\"name\", \"version\", \"params\"}")
        name = service.get("name")
        if not isinstance(name, str) or name not in self.services:
            offered = ", ".join(self.services) or "none"
            state = "not enabled on this site" if isinstance(name, str) and name in KINDS \
                else "an unknown service"
            raise InputError(f"{where}.name", f"{name!r} is {state}; this site offers: "
                                              f"{offered}")
        kind, site = self.kind(name), self.services[name]
        version = service.get("version")
        if version is not None and str(version) != site.version:
            raise InputError(f"{where}.version", f"{name} {version} is not offered; "
                                                 f"expected {site.version}")
        params = kind.check_params(service.get("params"), f"{where}.params", site.params)
        need = kind.min_memory(params)
        if site.memory and need > site.memory:
            raise InputError(f"{where}.params", f"these parameters need at least "
                                                f"{format_size(need)} of memory; this site "
                                                f"gives {name} {format_size(site.memory)}")
        return {"name": name, "version": site.version, "params": params}
