"""``GET metrics``: the service's metrics in Prometheus' text format, for tokens (or
browser sessions) with ``custom:rees:metrics`` — given to rees admins and Hub admins."""

from __future__ import annotations

from tornado import web

from .. import ADMIN_SCOPE, METRICS_SCOPE
from ..errors import Forbidden
from ..operations.metrics import CONTENT_TYPE
from .base import APIHandler


class MetricsHandler(APIHandler):
    @web.authenticated
    async def get(self):
        scopes = set(self.current_user.get("scopes") or [])
        if not ({METRICS_SCOPE, ADMIN_SCOPE} & scopes or self.viewer.admin):
            raise Forbidden(f"reading metrics needs the {METRICS_SCOPE} scope (rees admins "
                            "and Hub admins have it); ask a Hub admin for a token with it")
        metrics = self.settings["metrics"]
        await metrics.refresh()
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(metrics.text())


def routes() -> list:
    return [("metrics", MetricsHandler)]
