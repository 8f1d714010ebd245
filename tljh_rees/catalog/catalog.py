"""The environment catalog over the service's database.

Every read takes a :class:`Viewer` and goes through :func:`access.visible_to`, so
there is one answer to "may this person see this environment" for every path. Every
write is one database transaction, so a crash leaves either the old state or the new.

The service opens the catalog read-write; the Hub's spawner opens the same database
read-only (``Catalog.open_readonly``) to decide what it launches.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import create_engine, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ..errors import Conflict, Forbidden, InputError, NotFound
from ..services.kinds import ServiceCatalog
from ..store.models import Build, Environment, utcnow
from .access import Viewer, visible_to
from .profiles import Profiles

MAX_PAGE = 200
MAX_OFFSET = 2**63 - 1  # SQLite's largest integer
DISPLAY_NAME_MAX = 200
DESCRIPTION_MAX = 2000
EDITABLE = ("display_name", "description", "profile", "public", "services", "pinned")


@dataclass
class Page:
    """One page of environments, each with its last build (or None)."""

    items: list[tuple[Environment, Build | None]]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class LaunchPlan:
    """What a launch of an environment runs: decided here, never taken from the user."""

    environment: str
    image: str  # the image id the catalog recorded
    profile: dict | None
    site: bool = False  # made from a Binder link (owned by nobody)
    services: tuple = ()  # [{"name", "version", "params"}], checked when they were set
    registry_ref: str = ""  # multi-node mode: the image in the registry, by digest


def status_of(env: Environment, last_build: Build | None) -> str:
    """queued/running while a build is under way; built when launchable; else the last
    build's failure, or ``missing`` (never built, or its image was removed)."""
    if last_build is not None and last_build.status in Build.ACTIVE:
        return last_build.status
    if env.launchable:
        return "built"
    if last_build is not None and last_build.status in ("failed", "cancelled"):
        return last_build.status
    return "missing"


def check_text(data: dict, key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError(key, "expected text")
    if len(value) > limit:
        raise InputError(key, f"longer than {limit} characters")
    return value


def check_public(value, key: str = "public") -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InputError(key, "expected true or false")
    return value


def services_of(env: Environment) -> list[dict]:
    """An environment's default services, as stored (checked when they were set)."""
    try:
        services = json.loads(env.services or "[]")
    except ValueError:
        return []
    return services if isinstance(services, list) else []


class Catalog:
    def __init__(self, sessions: sessionmaker, profiles: Profiles,
                 services: ServiceCatalog | None = None):
        self.sessions = sessions
        self.profiles = profiles
        self.services = services or ServiceCatalog()  # the site's offer (rees.services)

    @classmethod
    def open_readonly(cls, path: str, profiles: Profiles,
                      services: ServiceCatalog | None = None) -> "Catalog":
        """The service's SQLite database, opened so this process can never write it."""
        engine = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
        return cls(sessionmaker(engine, expire_on_commit=False), profiles, services)

    @contextmanager
    def session(self):
        """A session for reading, or for a write the caller commits."""
        with self.sessions() as db:
            yield db

    @contextmanager
    def transaction(self):
        """A session whose changes are committed together on success."""
        with self.sessions.begin() as db:
            yield db

    # -- reading --------------------------------------------------------------------------

    def _query(self, viewer: Viewer, search: str = "", owner: str = "",
               public_only: bool = False, launchable_only: bool = False, repo: str = ""):
        query = select(Environment).where(visible_to(viewer))
        if public_only:
            query = query.where(Environment.public.is_(True))
        if launchable_only:
            query = query.where(Environment.image_id.is_not(None),
                                or_(Environment.image_present.is_(True),
                                    Environment.registry_ref.is_not(None)))
        if owner:
            query = query.where(Environment.owner == owner)
        if repo:
            query = query.where(Environment.repo == repo)
        fields = (Environment.name, Environment.display_name, Environment.description,
                  Environment.repo, Environment.owner)
        for word in search.lower().split():  # every word, in any field
            query = query.where(or_(*(func.lower(f).contains(word, autoescape=True)
                                      for f in fields)))
        return query

    def page(self, viewer: Viewer, search: str = "", owner: str = "", offset: int = 0,
             limit: int = 50, public_only: bool = False,
             launchable_only: bool = False, repo: str = "") -> Page:
        """Environments ``viewer`` may see, by name, with their last builds: one query
        for the page and one for the count, however many environments there are."""
        offset = min(max(0, int(offset)), MAX_OFFSET)  # past it, SQLite's integers overflow
        limit = max(1, min(int(limit), MAX_PAGE))
        query = self._query(viewer, search, owner, public_only, launchable_only, repo)
        with self.session() as db:
            total = db.scalar(select(func.count()).select_from(query.subquery()))
            rows = db.execute(
                query.add_columns(Build)
                .outerjoin(Build, Build.id == Environment.last_build_id)
                .order_by(Environment.name).offset(offset).limit(limit)).all()
        return Page([(env, build) for env, build in rows], total, offset, limit)

    def visible(self, viewer: Viewer, public_only: bool = False,
                launchable_only: bool = False) -> list[Environment]:
        """Every environment ``viewer`` may see (for the gallery's search over packages)."""
        query = self._query(viewer, public_only=public_only, launchable_only=launchable_only)
        with self.session() as db:
            return list(db.scalars(query.order_by(Environment.name)).all())

    def get(self, viewer: Viewer, name: str) -> Environment:
        """The environment ``name`` if ``viewer`` may see it; else 404 (not 403: others'
        private environments are not confirmed to exist)."""
        with self.session() as db:
            return self._get(db, viewer, name)

    def _get(self, db: Session, viewer: Viewer, name: str) -> Environment:
        env = db.scalars(select(Environment).where(Environment.name == name,
                                                   visible_to(viewer))).first() \
            if isinstance(name, str) else None
        if env is None:
            raise NotFound(f"no environment {name!r}", field="name")
        return env

    def exists(self, name: str) -> bool:
        """Whether anyone has claimed ``name`` (for defaults only: rights are checked when
        a request claims it)."""
        with self.session() as db:
            return db.scalar(select(Environment.id).where(Environment.name == name)) is not None

    def build(self, viewer: Viewer, build_id: str) -> Build:
        """A build, if ``viewer`` may see its environment; else 404."""
        with self.session() as db:
            build = db.scalars(select(Build).join(Environment,
                                                  Environment.id == Build.environment_id)
                               .where(Build.id == build_id, visible_to(viewer))).first()
        if build is None:
            raise NotFound(f"no build {build_id}", field="id")
        return build

    def builds(self, viewer: Viewer, environment: str = "", limit: int = 200) -> list[Build]:
        """The newest builds of the environments ``viewer`` may see."""
        query = (select(Build).join(Environment, Environment.id == Build.environment_id)
                 .where(visible_to(viewer)).order_by(Build.created.desc())
                 .limit(max(1, min(int(limit), MAX_PAGE))))
        if environment:
            query = query.where(Environment.name == environment)
        with self.session() as db:
            return list(db.scalars(query).all())

    def build_ids(self) -> set[str]:
        with self.session() as db:
            return set(db.scalars(select(Build.id)).all())

    def last_build(self, env: Environment) -> Build | None:
        if env.last_build_id is None:
            return None
        with self.session() as db:
            return db.get(Build, env.last_build_id)

    def managed(self, db: Session, viewer: Viewer, name: str, action: str) -> Environment:
        """The environment, if ``viewer`` may change it (``action`` words the refusal)."""
        env = self._get(db, viewer, name)
        if not viewer.may_manage(env.owner):
            raise Forbidden(f"only the environment's owner ({env.owner}) or an admin can "
                            f"{action} it", field="name")
        return env

    def launch_plan(self, viewer: Viewer, name: str, profile: str | None = None) -> LaunchPlan:
        """What ``viewer`` gets when launching ``name``, or a clear 4xx."""
        if not isinstance(name, str) or not name:
            raise InputError("environment", "expected the name of a built environment")
        try:
            env = self.get(viewer, name)
        except NotFound:
            raise NotFound(f"no environment named {name!r} (it may have been deleted, or "
                           "not be shared with you)", field="environment") from None
        if not env.launchable:
            raise Conflict(f"{name!r} has no built image yet; build it first"
                           if not env.image_id else
                           f"the image of {name!r} was removed; rebuild it",
                           field="environment")
        services = services_of(env)
        gone = [s.get("name") for s in services if s.get("name") not in self.services.services]
        if gone:
            raise Conflict(f"{name!r} asks for the add-on service {gone[0]!r}, which this "
                           "site no longer offers; its owner can change the environment's "
                           "services", field="environment")
        return LaunchPlan(env.name, env.image_id, self.profiles.resolve(profile, env.profile),
                          site=env.owner == "", services=tuple(services),
                          registry_ref=env.registry_ref or "")

    # -- writing --------------------------------------------------------------------------

    def claim(self, db: Session, viewer: Viewer, name: str, repo: str, *,
              spec_name: str | None = None, profile: str | None = None,
              public: bool | None = None, display_name: str | None = None,
              description: str | None = None) -> Environment:
        """Inside the caller's transaction: the environment ``name`` for a build of
        ``repo`` by ``viewer``, created (and owned by them) if nobody has it yet.

        Visibility, profile and texts given here apply to a new environment or change an
        existing one; those not given (None) keep their stored values.
        """
        env = db.scalars(select(Environment).where(Environment.name == name)).first()
        if env is None:
            env = Environment(name=name, repo=repo, owner=viewer.name, spec_name=spec_name,
                              profile="", public=True, display_name="", description="")
            db.add(env)
        else:
            if not viewer.may_manage(env.owner):
                raise Forbidden(f"the environment {name!r} belongs to {env.owner}; only "
                                "they or an admin can rebuild it; choose another name",
                                field="name")
            if env.repo != repo:
                raise Conflict(f"the environment {name!r} already builds from {env.repo}; "
                               "choose another name", field="name")
        if profile is not None:
            env.profile = self.profiles.check(profile)
        if public is not None:
            env.public = public
        if display_name is not None:
            env.display_name = display_name[:DISPLAY_NAME_MAX]
        if description is not None:
            env.description = description
        db.flush()  # assigns the id of a new environment
        return env

    def update(self, viewer: Viewer, name: str, changes: dict) -> Environment:
        """PATCH: display name, description, default profile (null: the site's), public,
        default services (checked against what the site offers; ``[]`` for none);
        ``pinned`` (the garbage collector keeps its image) by admins only."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise InputError(unknown[0], f"cannot be changed; expected any of "
                                         f"{', '.join(EDITABLE)}")
        values = {
            "display_name": check_text(changes, "display_name", DISPLAY_NAME_MAX),
            "description": check_text(changes, "description", DESCRIPTION_MAX),
            "public": check_public(changes.get("public")),
            "pinned": check_public(changes.get("pinned"), "pinned"),
        }
        if values["pinned"] is not None and not viewer.admin:
            raise Forbidden("only an admin can pin or unpin an environment", field="pinned")
        if "profile" in changes:
            values["profile"] = self.profiles.check(changes["profile"])
        if "services" in changes:
            values["services"] = json.dumps(self.check_services(changes["services"]))
        with self.transaction() as db:
            env = self.managed(db, viewer, name, "change")
            for key, value in values.items():
                if key in changes and value is not None:
                    setattr(env, key, value)
        return env

    def check_services(self, services, where: str = "services") -> list[dict]:
        """A list of default services, normalized; InputError names the bad field
        (``services[0].params.maxmemory``)."""
        if services is None:
            raise InputError(where, "expected a list of {\"name\", \"version\", "
                                    "\"params\"}; [] for none")
        return self.services.check(services, where=where)

    def note_launched(self, names: set[str], when=None) -> None:
        """Servers of the environments ``names`` run now (one transaction)."""
        if not names:
            return
        when = when or utcnow()
        with self.transaction() as db:
            for env in db.scalars(select(Environment).where(Environment.name.in_(names))):
                env.last_launched = when

    def remove(self, viewer: Viewer, name: str) -> tuple[Environment, list[str]]:
        """Delete the record and its builds (one transaction); returns it and the ids of
        its builds, whose logs and images the caller removes."""
        with self.transaction() as db:
            env = self.managed(db, viewer, name, "delete")
            build_ids = list(db.scalars(select(Build.id)
                                        .where(Build.environment_id == env.id)).all())
            db.delete(env)  # its builds go with it (ON DELETE CASCADE)
        return env, build_ids

    @staticmethod
    def set_image(db: Session, env: Environment, build: Build, size: int | None) -> None:
        """Inside the caller's transaction: ``build``'s image becomes ``env``'s."""
        env.image, env.image_id, env.image_size = build.image, build.image_id, size
        env.image_present = True
        env.commit, env.built = build.commit, utcnow()
        env.ref = build.ref
        if build.spec_version:
            env.spec_version = build.spec_version
        if build.services is not None:  # the repository declares them: they replace
            env.services = build.services

    def is_built(self, repo: str, commit: str) -> bool:
        """Whether some environment's current image is ``repo`` at ``commit``."""
        with self.session() as db:
            return self.cached_image(db, repo, commit) is not None

    def registry_images(self) -> set[str]:
        """Ids of environments' current images the registry holds (multi-node mode)."""
        with self.session() as db:
            return set(db.scalars(select(Environment.image_id).where(
                Environment.image_id.is_not(None),
                Environment.registry_ref.is_not(None))).all())

    def present_images_bytes(self) -> int:
        """Bytes of the environments' current images the engine has (each image once)."""
        with self.session() as db:
            rows = db.execute(select(Environment.image_id, Environment.image_size).where(
                Environment.image_id.is_not(None), Environment.image_present.is_(True))
            ).all()
        return sum(dict((image_id, size or 0) for image_id, size in rows).values())

    @staticmethod
    def cached_image(db: Session, repo: str, commit: str) -> Environment | None:
        """An environment whose current image was built by this service from ``repo`` at
        ``commit`` and is still on the engine (labels are not trusted for this)."""
        return db.scalars(select(Environment).where(
            Environment.repo == repo, Environment.commit == commit,
            Environment.image_id.is_not(None), Environment.image_present.is_(True),
        ).limit(1)).first()

    def sync(self, images: dict[str, int], tags: dict[str, str],
             registry: bool = False) -> list[str]:
        """Record which current images the engine still has (``images``: id → size;
        ``tags``: tag → id, for records made before image ids were kept). Returns the
        names of environments that can no longer be launched.

        ``registry``: multi-node mode, where an image the registry holds (``registry_ref``)
        stays launchable without the engine's copy. Otherwise registry references mean
        nothing (multi-node mode was turned off) and are forgotten."""
        gone = []
        with self.transaction() as db:
            for env in db.scalars(select(Environment).where(Environment.image.is_not(None))):
                was = bool(env.image_present or env.registry_ref)
                if env.image_id is None:
                    env.image_id = tags.get(env.image)
                if not registry:
                    env.registry_ref = None
                present = env.image_id in images
                env.image_present = present
                if was and not env.launchable:
                    gone.append(env.name)
                if present:
                    env.image_size = images[env.image_id]
        return gone

