"""Git servers over HTTP on 127.0.0.1: private (basic auth, for credential tests) or public
(standing in for GitHub, GitLab and gist hosts in Binder-link tests).

Serves bare repositories under ``root`` through ``git http-backend`` and records every
Authorization header it saw, so tests can prove credentials were used.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True


class PrivateGitServer:
    def __init__(self, root: str, username: str | None, password: str | None):
        self.root = root
        self.expected = None if username is None else \
            "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.authorized_requests = 0
        self.server = make_server("127.0.0.1", 0, self.app, server_class=_ThreadingServer,
                                  handler_class=_Quiet)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def app(self, environ, start_response):
        if self.expected and environ.get("HTTP_AUTHORIZATION") != self.expected:
            start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"'),
                                                ("Content-Length", "0")])
            return [b""]
        self.authorized_requests += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        env = {
            "PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "PATH_INFO": environ.get("PATH_INFO", ""),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "git",
            "GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
        }
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        start_response(status, headers)
        return [payload]


class PublicGitServer(PrivateGitServer):
    """Anyone may read: ``root/<path>`` (bare) answers at ``url/<path>``."""

    def __init__(self, root: str):
        super().__init__(root, None, None)

    def publish(self, path: str, source: str) -> str:
        """Publish the repository at ``source`` (a work tree) as ``url/<path>``, again
        after each new commit; returns that URL."""
        target = os.path.join(self.root, path)
        if os.path.exists(target):
            subprocess.run(["git", "-C", source, "push", "-q", "--all", "--force", target],
                           check=True, capture_output=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            subprocess.run(["git", "clone", "-q", "--bare", source, target], check=True,
                           capture_output=True)
        return f"{self.url}/{path}"
