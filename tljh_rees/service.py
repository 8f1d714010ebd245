"""Entry point of the Hub-managed service (``python -m tljh_rees.service``).

JupyterHub gives a managed service about ten seconds to answer, and loading the
whole service takes several on a busy two-core machine. So this module, which
imports almost nothing, listens at once: while the application loads (in a thread,
so this loop keeps answering) the service's front page says it is starting and
everything else answers 503. The real application then takes over the socket.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import urllib.parse

from tornado import web
from tornado.httpserver import HTTPServer

PREFIX = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/rees/")


class StartingHandler(web.RequestHandler):
    def get(self):
        if self.request.path.rstrip("/") == PREFIX.rstrip("/"):
            # JupyterHub counts any answer below 500 as "up"
            self.set_header("Refresh", "2")
            self.finish("<!DOCTYPE html><title>Starting</title>"
                        "<p>The environments service is starting…</p>")
            return
        self.set_status(503)
        self.set_header("Content-Type", "application/json")
        self.set_header("Retry-After", "2")
        self.finish(json.dumps({"error": "the rees service is starting; try again in a moment",
                                "status": 503}))

    post = put = patch = delete = get


async def serve() -> None:
    url = urllib.parse.urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL",
                                               "http://127.0.0.1:6789"))
    server = HTTPServer(web.Application([(r".*", StartingHandler)]))
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    app = await asyncio.to_thread(importlib.import_module, "tljh_rees.app")
    await app.run(server)


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
