"""Add-on services: a database (PostgreSQL, Redis) next to each server.

``kinds`` is the catalog of service kinds and a site's offer of them
(:class:`ServiceCatalog`); ``images`` makes each kind's local image from the same
Debian root filesystem as the base image. Starting them next to a server is the
launcher's part.
"""

from .kinds import KINDS, PASSWORD_ENV, ServiceCatalog, ServiceKind, kind_named

__all__ = ["KINDS", "PASSWORD_ENV", "ServiceCatalog", "ServiceKind", "kind_named"]
