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

from tornado import httputil, web
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


class LateBinding(httputil.HTTPMessageDelegate):
    """Hands a request to the server's application of the moment its headers arrive."""

    def __init__(self, start):
        self.start = start
        self.delegate: httputil.HTTPMessageDelegate | None = None

    def headers_received(self, start_line, headers):
        self.delegate = self.start()
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self):
        self.delegate.finish()

    def on_connection_close(self):
        if self.delegate is not None:
            self.delegate.on_connection_close()


class TakeoverServer(HTTPServer):
    """An HTTPServer whose ``request_callback`` may be replaced while it serves.

    Tornado picks the handler of a connection's next request as soon as the previous one
    ends, so after a plain swap the connections the Hub's proxy keeps open from the
    starting phase went on answering 503 "starting" (seen after restarts of the service,
    whenever the proxy used several connections at once).
    """

    def start_request(self, server_conn, request_conn):
        return LateBinding(lambda: super(TakeoverServer, self).start_request(server_conn,
                                                                             request_conn))


async def serve() -> None:
    url = urllib.parse.urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL",
                                               "http://127.0.0.1:6789"))
    server = TakeoverServer(web.Application([(r".*", StartingHandler)]))
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    app = await asyncio.to_thread(importlib.import_module, "tljh_rees.app")
    await app.run(server)


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
