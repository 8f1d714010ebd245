"""What every handler shares: Hub authentication, the viewer, the service's parts by
name, and errors as JSON.

Handlers reach the collaborators the service built once (``app.ReesService``) through
the properties below; they decide nothing about environments themselves: the catalog
does (``tljh_rees.catalog``).
"""

from __future__ import annotations

import json
import time
from http import HTTPStatus

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web
from tornado.log import app_log

from .. import ADMIN_SCOPE, BUILD_SCOPE
from ..catalog import Catalog, Viewer
from ..errors import Forbidden, InputError, ReesError

__all__ = ["APIHandler", "BaseHandler", "InputError", "error_message"]


def error_message(status_code: int, exc) -> str:
    """What to tell a person about an error: ours and tornado's say it; others don't."""
    if isinstance(exc, ReesError):
        return str(exc)
    if isinstance(exc, web.HTTPError) and exc.log_message:
        return exc.log_message % exc.args if exc.args else exc.log_message
    if status_code >= 500:
        return "Internal error in the rees service; the service log has details."
    return HTTPStatus(status_code).phrase


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    # RequestHandler has no logger of its own; without this, ``self.log`` (the health
    # check with the engine down, ``log_exception`` for every 4xx) raised AttributeError.
    log = app_log

    # -- the service's parts ------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self.settings["catalog"]

    @property
    def builds(self):
        return self.settings["builds"]

    @property
    def urls(self):
        return self.settings["urls"]

    # -- who is asking --------------------------------------------------------------------

    @property
    def user_name(self) -> str:
        return self.current_user["name"]

    @property
    def viewer(self) -> Viewer:
        """The current user with the rees permissions their token carries. A Hub admin
        is a rees admin only through a token that keeps the Hub's admin rights
        (``admin:users``): the user model says ``admin`` for every token of theirs, even
        one limited to reading the service."""
        user = self.current_user
        scopes = set(user.get("scopes") or [])
        name = user["name"]
        hub_admin = bool(user.get("admin")) and "admin:users" in scopes
        return Viewer(name, admin=hub_admin or ADMIN_SCOPE in scopes,
                      builder=BUILD_SCOPE in scopes,
                      servers=bool({"servers", f"servers!user={name}"} & scopes))

    def note_launch(self, began: float, label: str) -> None:
        """A launch answered: how long since ``began`` (``time.monotonic()``), for the
        admin's dashboard (operations/samples.py)."""
        sampler = self.settings.get("sampler")
        if sampler is not None:
            sampler.launch(time.monotonic() - began, label)

    def permissions(self) -> dict:
        return {"build": self.viewer.can_build, "admin": self.viewer.admin}

    def require_build(self) -> None:
        if not self.viewer.can_build:
            raise Forbidden("Building environments needs the build permission "
                            f"({BUILD_SCOPE}); ask a Hub admin.")

    def int_argument(self, name: str, default: int) -> int:
        value = self.get_argument(name, None)
        if value in (None, ""):
            return default
        try:
            return int(value)
        except ValueError:
            raise InputError(name, f"expected a whole number, got {value!r}") from None

    # -- errors ---------------------------------------------------------------------------

    def send_error(self, status_code: int = 500, **kwargs) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ReesError):
            status_code = exc.status
        super().send_error(status_code, **kwargs)

    def log_exception(self, typ, value, tb):
        if isinstance(value, ReesError):  # a person's mistake, not the service's
            app_log.info("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)


class APIHandler(BaseHandler):
    """JSON in and out; every error is ``{"error": ..., "status": N, "field"?: ...}``."""

    max_body = 64 * 1024

    def get_login_url(self):
        raise web.HTTPError(403, "Authenticate with a JupyterHub token "
                                 "(header 'Authorization: token ...') or log in to the Hub.")

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def write_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    def json_body(self, allowed: set[str], required: set[str] = frozenset(),
                  lax: bool = False) -> dict:
        """The request's JSON object; fields outside ``allowed`` are refused unless
        ``lax`` (the domain then names the field it refuses)."""
        if len(self.request.body) > self.max_body:
            raise ReesError(f"The request body is larger than {self.max_body} bytes.",
                            status=413)
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise ReesError(f"The request body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise ReesError("The request body must be a JSON object.")
        unknown = sorted(set(data) - allowed)
        if unknown and not lax:
            raise ReesError(f"Unknown field(s) {', '.join(map(repr, unknown))}; expected "
                            f"{', '.join(sorted(allowed)) or 'no fields'}.")
        missing = sorted(k for k in required if data.get(k) in (None, ""))
        if missing:
            raise ReesError(f"Missing field(s): {', '.join(missing)}.")
        return data

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body = {"error": error_message(status_code, exc), "status": status_code}
        if getattr(exc, "field", None):
            body["field"] = exc.field
        if status_code in (429, 503):  # busy: say when to come back
            self.set_header("Retry-After", str(getattr(exc, "retry_after", 5)))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
