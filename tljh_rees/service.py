"""Entry point of the Hub-managed service (``python -m tljh_rees.service``).

JupyterHub gives a managed service about ten seconds to answer, and loading the
whole service takes several on a busy two-core machine. So this module, which
imports almost nothing, listens at once: while the application loads (in a thread,
so this loop keeps answering) the service's front page says it is starting and
everything else answers 503. The real application then takes over the socket.

Request bodies are read in full before a handler runs, so before anyone is
authenticated: :class:`ServiceServer` limits each body to what its route can use
(tornado's default is 100 MB everywhere) and answers a larger declared one with a 413
at once, without reading it.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import urllib.parse

from tornado import httputil, web
from tornado.httpserver import HTTPServer

PREFIX = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/rees/")
# The largest body a route other than the import reads: the composer's JSON
# (handlers/specs.py SpecsAPIHandler.max_body, 4 MiB), with room for form fields.
BODY_MAX = 4 * 1024**2 + 64 * 1024
IMPORT_PATH = PREFIX + "api/specs/import"
IMPORT_OVERHEAD = 1024**2  # the import's own allowance over the spec's size (ImportHandler)


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


def body_limit(path: str, app) -> int:
    """The largest body ``path`` may get: a spec import the composer's total size
    (``c.SpecStore.max_total_bytes``) and its allowance, everything else ``BODY_MAX``."""
    composer = getattr(app, "settings", {}).get("composer")
    if composer is not None and path.rstrip("/") == IMPORT_PATH:
        return max(BODY_MAX, composer.limits().max_total_bytes + IMPORT_OVERHEAD)
    return BODY_MAX


class RequestStart(httputil.HTTPMessageDelegate):
    """A request, as its headers arrive: its body capped for its route (a declared length
    over the cap gets a 413 and the connection is closed unread), then handed to the
    server's application of that moment."""

    def __init__(self, server: "ServiceServer", server_conn, request_conn):
        self.server, self.server_conn, self.conn = server, server_conn, request_conn
        self.delegate: httputil.HTTPMessageDelegate | None = None

    def headers_received(self, start_line, headers):
        self.path = urllib.parse.urlsplit(start_line.path).path
        limit = body_limit(self.path, self.server.request_callback)
        self.conn.set_max_body_size(limit)  # chunked bodies stop there too (tornado: 400)
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            length = 0  # tornado refuses it itself
        if length > limit:
            return self._refuse(length, limit)
        self.delegate = HTTPServer.start_request(self.server, self.server_conn, self.conn)
        return self.delegate.headers_received(start_line, headers)

    def _refuse(self, length: int, limit: int) -> None:
        logging.getLogger("tljh_rees").info("413: a body of %d bytes for %s; the limit is %d",
                                            length, self.path, limit)
        body = json.dumps({"error": f"The request body is {length} bytes; at most {limit} "
                                    "bytes are accepted here.", "status": 413}).encode()
        stream = self.conn.detach()
        head = ("HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        stream.write(head + body).add_done_callback(lambda sent: (sent.exception(),
                                                                   stream.close()))

    def data_received(self, chunk):
        return self.delegate.data_received(chunk)

    def finish(self):
        self.delegate.finish()

    def on_connection_close(self):
        if self.delegate is not None:
            self.delegate.on_connection_close()


class ServiceServer(HTTPServer):
    """An HTTPServer whose ``request_callback`` may be replaced while it serves, with
    request bodies capped per route (see :func:`body_limit`).

    Tornado picks the handler of a connection's next request as soon as the previous one
    ends, so after a plain swap the connections the Hub's proxy keeps open from the
    starting phase went on answering 503 "starting" (seen after restarts of the service,
    whenever the proxy used several connections at once): each request is bound when its
    headers arrive instead.
    """

    def start_request(self, server_conn, request_conn):
        return RequestStart(self, server_conn, request_conn)


async def serve() -> None:
    url = urllib.parse.urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL",
                                               "http://127.0.0.1:6789"))
    server = ServiceServer(web.Application([(r".*", StartingHandler)]),
                           max_body_size=BODY_MAX)
    server.listen(url.port or 80, url.hostname or "127.0.0.1")
    for_servers = os.environ.get("TLJH_REES_SERVER_ADDRESS")  # hubconfig.SERVER_ADDRESS_ENV
    if for_servers:  # where users' servers reach it (the JupyterLab extension)
        server.listen(url.port or 80, for_servers)
    app = await asyncio.to_thread(importlib.import_module, "tljh_rees.app")
    await app.run(server)


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
