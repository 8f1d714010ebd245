"""Templates (seed 004): who may register, see and launch them, what their JSON is, and
what a launch of one runs. The service and the Hub's spawner both ask this module, so a
launch through the Hub's own API meets the same rules as one through the service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import Conflict, Forbidden, InputError, NotFound
from ..services.kinds import ServiceCatalog
from ..settings import format_size, parse_size, readable_size
from ..store.models import Build, Environment, Template, TemporaryUser, iso, utcnow
from .access import Viewer, visible_to
from .catalog import Catalog, LaunchPlan

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
FIELDS = {"name", "image-name", "limits", "cull-timeout", "max-age", "max-servers",
          "services", "anonymous", "allowed-users", "command"}
EDITABLE = FIELDS - {"name", "command"}
DAY = 24 * 3600
MAX_SECONDS = 30 * DAY
DEFAULT_CULL_TIMEOUT = 3600


@dataclass(frozen=True)
class Machine:
    """What servers run on. ``cpus`` and ``memory``: the most one server may have (limits
    are checked against it); ``total_*``: what all servers together may have (pools are
    sized by it). On one machine both are the machine's; in multi-node mode a live
    ``SwarmMachine`` (tljh_rees/swarm/capacity.py) answers the same questions."""

    cpus: float
    memory: int  # bytes
    describe_one = "this machine's"  # whose cpus and memory, as the errors say
    describe_all = "this machine has"  # whose totals, as the errors say

    @property
    def total_cpus(self) -> float:
        return self.cpus

    @property
    def total_memory(self) -> int:
        return self.memory


@dataclass(frozen=True)
class TemplatePlan(LaunchPlan):
    """A launch plan of a template: also whether the server is a temporary user's."""

    template: str = ""
    temporary: bool = False
    anonymous: bool = False
    plain_image: bool = False  # an image the admin allows (image-kind), not an environment


def template_json(template: Template, status: str | None = None) -> dict:
    """A template in the seed's shape (hyphenated keys)."""
    body = {
        "name": template.name,
        "image-name": template.image_name,
        "image-kind": template.image_kind,
        "limits": {"memory": format_size(template.memory) if template.memory else None,
                   "cpu": template.cpu},
        "cull-timeout": template.cull_timeout,
        "max-age": template.max_age,
        "max-servers": template.max_servers,
        "services": json.loads(template.services or "[]"),
        "anonymous": template.anonymous,
        "allowed-users": json.loads(template.allowed_users or "[]"),
        "owner": template.owner,
        "time-created": iso(template.created),
        "time-modified": iso(template.modified),
    }
    if status is not None:
        body["status"] = status
    return body


class TemplateCatalog:
    """Templates over the catalog's database (read-write in the service, read-only in
    the spawner). ``allowed_images``: plain images an admin lets templates use."""

    def __init__(self, catalog: Catalog, machine: Machine, allowed_images=(),
                 services: ServiceCatalog | None = None):
        self.catalog = catalog
        self.machine = machine
        self.allowed_images = list(allowed_images)
        self.services = services or ServiceCatalog()  # none enabled unless given

    # -- rules ----------------------------------------------------------------------------

    @staticmethod
    def may_launch(viewer: Viewer, template: Template) -> bool:
        """Logged-in launches: admins, the owner, and the template's allowed users (every
        user when it names none)."""
        allowed = json.loads(template.allowed_users or "[]")
        return viewer.admin or template.owner == viewer.name or not allowed \
            or viewer.name in allowed

    @staticmethod
    def may_manage(viewer: Viewer, template: Template) -> bool:
        return viewer.may_manage(template.owner)

    # -- reading --------------------------------------------------------------------------

    def all(self, viewer: Viewer) -> list[Template]:
        """The templates ``viewer`` may launch or manage, by name."""
        with self.catalog.session() as db:
            rows = db.scalars(select(Template).order_by(Template.name)).all()
        return [t for t in rows if self.may_launch(viewer, t) or self.may_manage(viewer, t)]

    def get(self, viewer: Viewer | None, name: str) -> Template:
        """The template, if ``viewer`` may launch or manage it (anonymous callers, None,
        see only anonymous templates); else 404."""
        template = self.find(name)
        if template is not None:
            if viewer is None and template.anonymous:
                return template
            if viewer is not None and (self.may_launch(viewer, template)
                                       or self.may_manage(viewer, template)):
                return template
        raise NotFound(f"no template {name!r}", field="template")

    def find(self, name) -> Template | None:
        if not isinstance(name, str):
            return None
        with self.catalog.session() as db:
            return db.scalars(select(Template).where(Template.name == name)).first()

    def temporary_user(self, name: str) -> TemporaryUser | None:
        """The live temporary user ``name`` (None: a person's account): the one test of
        whether a Hub user is temporary."""
        if not isinstance(name, str) or not name:
            return None
        with self.catalog.session() as db:
            row = db.get(TemporaryUser, name)
        return row if row is not None and row.state in TemporaryUser.LIVE else None

    def status(self, template: Template) -> str:
        """``completed`` when its image is there to launch, ``pending`` while its
        environment builds, else ``failed``."""
        if template.image_kind == "image":
            return "completed"
        with self.catalog.session() as db:
            env = db.scalars(select(Environment)
                             .where(Environment.name == template.image_name)).first()
            build = db.get(Build, env.last_build_id) if env and env.last_build_id else None
        if env is None:
            return "failed"
        if build is not None and build.status in Build.ACTIVE:
            return "pending"
        return "completed" if env.launchable else "failed"

    def plan(self, viewer: Viewer, name: str, temporary: TemporaryUser | None = None
             ) -> TemplatePlan:
        """What a server of template ``name`` runs for ``viewer``: a temporary user only
        the template it was made for; anyone else what ``may_launch`` allows."""
        template = self.find(name)
        if temporary is not None:
            if template is None or temporary.template_id != template.id \
                    or not template.anonymous:
                raise Forbidden(f"this temporary user was made for {temporary.template!r} "
                                "only", field="template")
        elif template is None or not self.may_launch(viewer, template):
            raise NotFound(f"no template {name!r} you may launch", field="template")
        if template.image_kind == "image":
            if template.image_name not in self.allowed_images:
                raise Conflict(f"the image {template.image_name!r} of template {name!r} is "
                               "no longer allowed by the admin", field="template")
            image, registry_ref = template.image_name, ""
        else:
            with self.catalog.session() as db:
                env = db.scalars(select(Environment)
                                 .where(Environment.name == template.image_name)).first()
            if env is None:
                raise Conflict(f"the environment {template.image_name!r} of template "
                               f"{name!r} was deleted", field="template")
            if not env.launchable:
                raise Conflict(f"the environment {template.image_name!r} of template "
                               f"{name!r} has no built image; rebuild it", field="template")
            image, registry_ref = env.image_id, env.registry_ref or ""
        # still offered, as the admin has it now (a service turned off stops its templates)
        services = tuple(self.services.check(json.loads(template.services or "[]")))
        memory, cpu = self.services.share(services, template.memory, template.cpu)
        limits = {"name": f"template {name}", "cpu": cpu, "memory": memory}
        return TemplatePlan(template.image_name, image, limits, template=name,
                            temporary=temporary is not None, anonymous=template.anonymous,
                            services=services, registry_ref=registry_ref,
                            plain_image=template.image_kind == "image")

    # -- writing --------------------------------------------------------------------------

    def register(self, viewer: Viewer, data: dict) -> Template:
        if not viewer.can_build:
            raise Forbidden("registering templates needs the build permission "
                            "(custom:rees:build)")
        unknown = sorted(set(data) - FIELDS)
        if unknown:
            raise InputError(unknown[0], f"unknown field; expected any of "
                                         f"{', '.join(sorted(FIELDS))}")
        if data.get("image-name") in (None, ""):
            raise InputError("image-name", "required: the name of a built environment (or "
                                           "an image the admin allows)")
        name = data.get("name") or data["image-name"]
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InputError("name", "expected 1 to 63 lowercase letters, digits, '.', '_' "
                                     "or '-', starting with a letter or digit")
        values = self._values(viewer, data, new=True)
        with self.catalog.transaction() as db:
            if db.scalars(select(Template.id).where(Template.name == name)).first():
                raise Conflict(f"a template named {name!r} exists; choose another name or "
                               "PATCH it", field="name")
            template = Template(name=name, owner=viewer.name, **values)
            self._check_share(template)
            db.add(template)
        return template

    def update(self, viewer: Viewer, name: str, data: dict) -> Template:
        unknown = sorted(set(data) - EDITABLE)
        if unknown:
            raise InputError(unknown[0], f"cannot be changed; expected any of "
                                         f"{', '.join(sorted(EDITABLE))}")
        values = self._values(viewer, data, new=False)
        with self.catalog.transaction() as db:
            template = self._managed(db, viewer, name, "change")
            for key, value in values.items():
                setattr(template, key, value)
            self._check_share(template)
            template.modified = utcnow()
        return template

    def remove(self, viewer: Viewer, name: str) -> Template:
        """Delete the template and its pool (its temporary users are the caller's to
        stop first: see ``ondemand``)."""
        with self.catalog.transaction() as db:
            template = self._managed(db, viewer, name, "delete")
            db.delete(template)
        return template

    def _check_share(self, template: Template) -> None:
        """Its services' resources fit in its limits, leaving the server enough."""
        self.services.share(json.loads(template.services or "[]"), template.memory,
                            template.cpu)

    def _managed(self, db, viewer: Viewer, name: str, action: str) -> Template:
        template = db.scalars(select(Template).where(Template.name == name)).first()
        if template is None or not (self.may_launch(viewer, template)
                                    or self.may_manage(viewer, template)):
            raise NotFound(f"no template {name!r}", field="template")
        if not self.may_manage(viewer, template):
            raise Forbidden(f"only the template's owner ({template.owner}) or an admin can "
                            f"{action} it", field="template")
        return template

    def _values(self, viewer: Viewer, data: dict, new: bool) -> dict:
        """Checked column values for the fields given (defaults too when ``new``)."""
        values = {}
        if data.get("command") not in (None, "", []):
            raise InputError("command", "not supported: servers run jupyterhub-singleuser "
                                        "(the Hub needs it); the environment decides what "
                                        "else its image runs")
        if "image-name" in data:
            values["image_name"], values["image_kind"] = self._image(viewer,
                                                                     data["image-name"])
        if "limits" in data or new:
            values.update(self._limits(data.get("limits")))
        for key, column, default in (("cull-timeout", "cull_timeout", DEFAULT_CULL_TIMEOUT),
                                     ("max-age", "max_age", 0)):
            if key in data or new:
                values[column] = seconds(data.get(key, default), key)
        if "max-servers" in data or new:
            values["max_servers"] = whole(data.get("max-servers", 0), "max-servers", 0,
                                          10_000)
        if "services" in data or new:
            values["services"] = json.dumps(self._services(data.get("services") or []))
        if "anonymous" in data or new:
            anonymous = data.get("anonymous", False)
            if not isinstance(anonymous, bool):
                raise InputError("anonymous", "expected true or false")
            values["anonymous"] = anonymous
        if "allowed-users" in data or new:
            users = data.get("allowed-users") or []
            if not isinstance(users, list) or not all(isinstance(u, str) and u and len(u) <= 255
                                                      for u in users) or len(users) > 1000:
                raise InputError("allowed-users", "expected a list of user names (empty: "
                                                  "every user of the Hub)")
            values["allowed_users"] = json.dumps(sorted(set(users)))
        return values

    def _image(self, viewer: Viewer, image_name) -> tuple[str, str]:
        if not isinstance(image_name, str) or not image_name or len(image_name) > 255:
            raise InputError("image-name", "expected the name of a built environment")
        if image_name in self.allowed_images:
            return image_name, "image"
        with self.catalog.session() as db:
            env = db.scalars(select(Environment).where(Environment.name == image_name,
                                                       visible_to(viewer))).first()
        if env is None:
            allowed = ", ".join(self.allowed_images) or "none are allowed"
            raise InputError("image-name", f"no environment {image_name!r} you may use, and "
                                           f"not an image the admin allows ({allowed})")
        return image_name, "environment"

    def _limits(self, limits) -> dict:
        """Memory and CPU within the machine; those not given are the site's default
        profile's, so every template's size is known (pools are counted by it)."""
        if limits is None:
            limits = {}
        if not isinstance(limits, dict) or set(limits) - {"memory", "cpu"}:
            raise InputError("limits", "expected {\"memory\": \"1G\", \"cpu\": 0.5}")
        default = self.catalog.profiles.limits("")
        memory, cpu = default.get("memory"), default.get("cpu")
        if limits.get("memory") is not None:
            try:
                memory = parse_size(limits["memory"])
            except (TypeError, ValueError):
                raise InputError("limits.memory", f"expected a size like 512M or 2G, got "
                                                  f"{limits['memory']!r}") from None
            if memory < 64 * 1024**2 or memory > self.machine.memory:
                raise InputError("limits.memory", f"expected 64M to "
                                                  f"{readable_size(self.machine.memory)} ("
                                                  f"{self.machine.describe_one} memory), got "
                                                  f"{limits['memory']}")
        if limits.get("cpu") is not None:
            cpu = limits["cpu"]
            if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) \
                    or not 0.01 <= cpu <= self.machine.cpus:
                raise InputError("limits.cpu", f"expected a number of CPUs from 0.01 to "
                                               f"{self.machine.cpus:g} "
                                               f"({self.machine.describe_one}), got {cpu!r}")
            cpu = float(cpu)
        return {"memory": memory, "cpu": cpu}

    def _services(self, services) -> list[dict]:
        """The seed's ``[{"name", "version", "params"}]``, each a service this site
        offers (``rees.services``), normalized by the site's :class:`ServiceCatalog`."""
        return self.services.check(services, where="services")


def seconds(value, field: str) -> int:
    return whole(value, field, 0, MAX_SECONDS, "seconds")


def whole(value, field: str, low: int, high: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(field, f"expected a whole number{' of ' + unit if unit else ''} "
                                f"from {low} to {high} (0: none), got {value!r}")
    return value

