"""What every handler shares: Hub authentication, permissions, JSON errors."""

from __future__ import annotations

import json
from http import HTTPStatus

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from .. import ADMIN_SCOPE, BUILD_SCOPE
from ..errors import InputError  # noqa: F401 (handlers raise it from here too)


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def rees(self):
        """The running :class:`tljh_rees.app.ReesService`."""
        return self.settings["rees"]

    @property
    def user_name(self) -> str:
        return self.current_user["name"]

    @property
    def scopes(self) -> set[str]:
        return set(self.current_user.get("scopes") or [])

    @property
    def is_admin(self) -> bool:
        return bool(self.current_user.get("admin")) or ADMIN_SCOPE in self.scopes

    @property
    def can_build(self) -> bool:
        return self.is_admin or BUILD_SCOPE in self.scopes

    def permissions(self) -> dict:
        return {"build": self.can_build, "admin": self.is_admin}

    def require_build(self) -> None:
        if not self.can_build:
            raise web.HTTPError(403, "Building environments needs the build permission "
                                     f"({BUILD_SCOPE}); ask a Hub admin.")

    def may_manage(self, owner: str) -> bool:
        return self.is_admin or (self.can_build and owner == self.user_name)


class APIHandler(BaseHandler):
    """JSON in and out; every error is ``{"error": ..., "status": N}``."""

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

    def json_body(self, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if len(self.request.body) > self.max_body:
            raise web.HTTPError(413, f"The request body is larger than {self.max_body} bytes.")
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError as e:
            raise web.HTTPError(400, f"The request body is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise web.HTTPError(400, f"Unknown field(s) {', '.join(unknown)}; expected "
                                     f"{', '.join(sorted(allowed))}.")
        missing = sorted(k for k in required if data.get(k) in (None, ""))
        if missing:
            raise web.HTTPError(400, f"Missing field(s): {', '.join(missing)}.")
        return data

    def write_error(self, status_code, **kwargs):
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "Internal error in the rees service; the service log has details."
        elif not message:
            message = HTTPStatus(status_code).phrase
        body = {"error": message, "status": status_code}
        if isinstance(exc, InputError):
            body["field"] = exc.field
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))
