"""JSON API: the environment catalog (list, search, read, change, delete)."""

from __future__ import annotations

from urllib.parse import urlencode

from tornado import web

from ..catalog.catalog import EDITABLE, services_of, status_of
from ..store.models import Build, Environment, iso
from .base import APIHandler
from .builds import build_json


def environment_json(env: Environment, last_build: Build | None, handler) -> dict:
    profiles = handler.catalog.profiles
    return {
        "name": env.name, "display_name": env.display_name or env.name,
        "description": env.description, "repo": env.repo, "ref": env.ref,
        "commit": env.commit, "image": env.image if env.launchable else None,
        "image_size": env.image_size if env.launchable else None,
        "registry_image": (env.registry_ref or None) if env.launchable else None,
        "owner": env.owner, "profile": env.profile or None,
        "limits": profiles.limits(env.profile),
        "public": env.public, "status": status_of(env, last_build),
        "services": services_of(env),
        "pinned": bool(env.pinned), "last_launched": iso(env.last_launched),
        "spec_name": env.spec_name, "spec_version": env.spec_version,
        "created": iso(env.created), "updated": iso(env.updated), "built": iso(env.built),
        "last_build": build_json(last_build, handler.builds, handler.urls)
        if last_build else None,
        "url": handler.urls("api/environments", env.name),
    }


class EnvironmentsHandler(APIHandler):
    """``?q=words&owner=NAME&built=true&offset=0&limit=50``: a page of the environments
    you may see (``built``: only launchable ones), by name; ``next`` is the next page's URL
    (null on the last)."""

    @web.authenticated
    def get(self):
        q, owner = self.get_argument("q", ""), self.get_argument("owner", "")
        built = self.get_argument("built", "") == "true"
        page = self.catalog.page(self.viewer, search=q, owner=owner, launchable_only=built,
                                 offset=self.int_argument("offset", 0),
                                 limit=self.int_argument("limit", 50))
        following = page.offset + len(page.items)
        next_url = None
        if following < page.total:
            query = {k: v for k, v in (("q", q), ("owner", owner),
                                       ("built", "true" if built else "")) if v}
            next_url = self.urls("api/environments") + "?" + urlencode(
                {**query, "offset": following, "limit": page.limit})
        self.write_json({
            "environments": [environment_json(env, build, self) for env, build in page.items],
            "total": page.total, "offset": page.offset, "limit": page.limit,
            "next": next_url,
        })


class EnvironmentHandler(APIHandler):
    @web.authenticated
    def get(self, name):
        env = self.catalog.get(self.viewer, name)
        self.write_json(environment_json(env, self.catalog.last_build(env), self))

    @web.authenticated
    def patch(self, name):
        data = self.json_body(set(EDITABLE))
        env = self.catalog.update(self.viewer, name, data)
        self.write_json(environment_json(env, self.catalog.last_build(env), self))

    @web.authenticated
    async def delete(self, name):
        force = self.get_argument("force", "false").lower() == "true"
        await self.builds.remove_environment(self.viewer, name, force)
        self.set_status(204)
        self.finish()


def routes() -> list:
    return [
        ("api/environments", EnvironmentsHandler),
        (r"api/environments/([a-z0-9._-]+)", EnvironmentHandler),
    ]
