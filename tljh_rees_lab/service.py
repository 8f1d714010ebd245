"""The rees service, as seen from inside a user's server.

The spawner tells the server where the service listens for servers
(``TLJH_REES_ADDRESS``, e.g. ``http://172.17.0.1:6789``); the service's path is the
Hub's base URL plus ``services/rees/``, as JupyterHub routes services. Requests carry the
server's Hub token in a header, never in a URL.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

ADDRESS_ENV = "TLJH_REES_ADDRESS"
SERVICE_NAME_ENV = "TLJH_REES_SERVICE_NAME"
REQUEST_TIMEOUT = 120  # an import runs repo2docker's detection on the service
STREAM_TIMEOUT = 4 * 3600  # a build's log, however long the build


class ServiceError(Exception):
    """The service said no (its message and status kept) or could not be reached."""

    def __init__(self, message, status=502, details=None):
        super().__init__(message)
        self.status = status
        self.details = details or {}


class ReesClient:
    def __init__(self, address, public_prefix, token):
        self.address = address.rstrip("/")
        self.public_prefix = public_prefix  # the service's path as the browser sees it
        self.token = token

    @classmethod
    def from_environment(cls, env):
        address, token = env.get(ADDRESS_ENV), env.get("JUPYTERHUB_API_TOKEN")
        if not address or not token:
            return None
        base = env.get("JUPYTERHUB_BASE_URL") or "/"
        prefix = base.rstrip("/") + "/services/" + env.get(SERVICE_NAME_ENV, "rees") + "/"
        return cls(address, prefix, token)

    def url(self, path, query=None):
        url = self.address + self.public_prefix + path
        return url + "?" + urlencode(query) if query else url

    def headers(self, extra=None):
        headers = {"Authorization": "token " + self.token}
        headers.update(extra or {})
        return headers

    async def json(self, method, path, body=None, content_type=None, query=None):
        headers = self.headers({"Content-Type": content_type} if content_type else None)
        request = HTTPRequest(self.url(path, query), method=method, headers=headers,
                              body=body, request_timeout=REQUEST_TIMEOUT,
                              allow_nonstandard_methods=True)
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as e:
            raise _refusal(e) from None
        except OSError as e:
            raise ServiceError("the tljh-rees service is not reachable ({}); ask the Hub's "
                               "admin".format(e), status=502) from None
        return json.loads(response.body or b"{}")

    async def stream(self, path, headers, on_chunk):
        """GET ``path``, handing each piece of the body to ``on_chunk(bytes)`` as it comes."""
        request = HTTPRequest(self.url(path), headers=self.headers(headers),
                              streaming_callback=on_chunk, request_timeout=STREAM_TIMEOUT)
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code >= 400 or response.code == 599:
            raise ServiceError("the build's log could not be read ({})".format(
                response.reason or response.error), status=response.code)


def _refusal(error):
    """The service's own JSON error, kept for the user (it says what to do)."""
    body = error.response.body if error.response is not None else b""
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    message = data.get("error") or "the tljh-rees service answered {}".format(error.code)
    details = {k: data[k] for k in ("field", "problems") if k in data}
    return ServiceError(message, status=error.code, details=details)
