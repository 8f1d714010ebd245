"""Binder links: from ``<provider>/<spec>`` to a built environment of this Hub.

Environments made from links belong to the site (their owner is nobody, so only admins
change them), are public, and are named from the provider, the repository and the
resolved version: the same link resolving to the same commit is built once; a new
commit is a new environment, so a link pinned to an old commit keeps working.
"""

from __future__ import annotations

import hashlib
import re

from traitlets import Enum, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..builds.request import NAME_MAX, SITE_PREFIX, BuildRequest
from ..catalog import Viewer
from ..engine.images import short_version
from ..errors import Forbidden, NotFound
from .archives import ARCHIVE_PROVIDERS
from .providers import GIT_PROVIDERS, Resolved, RepoProvider

# Builds for links are made in the site's name: a requester that owns only what has no
# owner (the environments made from links), and may build.
SITE = Viewer("", builder=True)


def environment_name(resolved: Resolved) -> str:
    """``binder.<provider>-<slug>-<version>``, cut to an image name's length with a hash
    of the whole so that different repositories never share a name."""
    version = short_version(resolved.version)
    slug = re.sub(r"[^a-z0-9]+", "-", resolved.slug.lower()).strip("-") or "repo"
    name = f"{SITE_PREFIX}{resolved.provider}-{slug}-{version}"
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(f"{resolved.provider}/{resolved.repo_url}/{resolved.slug}"
                                .encode())
        keep = NAME_MAX - len(SITE_PREFIX) - len(resolved.provider) - len(version) - 10
        name = f"{SITE_PREFIX}{resolved.provider}-{slug[:keep].strip('-')}-" \
               f"{digest.hexdigest()[:6]}-{version}"
    return name


class BinderLinks(LoggingConfigurable):
    providers = List(Unicode(), config=True,
                     help="The Binder providers this Hub answers, by BinderHub's ids "
                          "(default: all of them).")
    build_from_links = Enum(["builders", "users"], "builders", config=True,
                            help="Who may have a link's repository built: those with the "
                                 "build permission, or every logged-in user.")
    cors_allow_origin = Unicode("", config=True,
                                help="Access-Control-Allow-Origin for the Binder routes and "
                                     "the servers they start ('*' or one origin); '' for "
                                     "none.")

    @default("providers")
    def _all_providers(self):
        return list(provider_classes())

    def __init__(self, builds, **kwargs):
        super().__init__(**kwargs)
        self.builds = builds
        classes = provider_classes()
        unknown = [p for p in self.providers if p not in classes]
        if unknown:
            raise ValueError(f"unknown Binder providers {unknown}; known: {sorted(classes)}")
        self.enabled: dict[str, RepoProvider] = {
            p: classes[p](parent=self) for p in self.providers}

    def provider(self, provider_id: str) -> RepoProvider:
        provider = self.enabled.get(provider_id)
        if provider is None:
            raise NotFound(f"no provider {provider_id!r} on this Hub; it offers "
                           f"{', '.join(self.enabled) or 'none'}", field="provider")
        return provider

    async def resolve(self, provider_id: str, spec: str) -> Resolved:
        return await self.provider(provider_id).resolve(spec.rstrip("/"))

    def may_build(self, viewer: Viewer) -> bool:
        return viewer.can_build or self.build_from_links == "users"

    async def build(self, resolved: Resolved, viewer: Viewer):
        """The build of a link's version: answered from the cache (any environment built
        from this repository at this version: no build runs), or a new one if ``viewer``
        may have it built."""
        name = environment_name(resolved)
        if not self.builds.catalog.is_built(resolved.repo_url, resolved.version) \
                and not self.may_build(viewer):
            raise Forbidden(f"{resolved.repo_url} at {resolved.version[:12]} is not built "
                            "on this Hub yet, and building needs the build permission; "
                            "ask an admin", field="spec")
        return await self._submit(resolved, name)

    async def _submit(self, resolved: Resolved, name: str):
        provider = self.enabled[resolved.provider]
        return await self.builds.submit(BuildRequest(
            source=resolved.source, ref=resolved.version, name=name, requester=SITE,
            public=True,
            display_name=f"{provider.display_name}: {resolved.repo_url} @ "
                         f"{short_version(resolved.version)}"[:200],
            description=f"Made from the Binder link {provider.id}/{resolved.spec}"),
            commit=resolved.version)


def provider_classes() -> dict[str, type[RepoProvider]]:
    """Every provider class, by BinderHub's id, in BinderHub's order."""
    return {cls.id: cls for cls in (*GIT_PROVIDERS, *ARCHIVE_PROVIDERS)}
