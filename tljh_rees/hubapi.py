"""The few calls the service makes to the Hub's REST API, with its own token.

The token has ``admin:servers``: the service only uses it for a user who asked with a
token that may start their own servers (see ``launcher.py``)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
from typing import AsyncIterator

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .errors import ReesError


class HubAPI:
    def __init__(self, api_url: str, token: str | None = None):
        self.api_url = api_url.rstrip("/")
        self.token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")

    async def request(self, method: str, path: str, body=None) -> dict | None:
        headers = {"Authorization": f"token {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            data = ""
        try:
            response = await AsyncHTTPClient().fetch(f"{self.api_url}/{path.lstrip('/')}",
                                                     method=method, headers=headers,
                                                     body=data, request_timeout=120)
        except OSError as e:
            raise ReesError(f"the Hub is not reachable: {e.strerror or e}", status=502) \
                from None
        except HTTPClientError as e:
            message = e.message
            if e.response is not None and e.response.body:
                try:
                    message = json.loads(e.response.body).get("message") or message
                except ValueError:
                    pass
            raise ReesError(f"the Hub said: {message}",
                            status=e.code if e.code < 500 else 502) from None
        if response.body:
            return json.loads(response.body)
        return None

    @staticmethod
    def quote(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    async def user(self, name: str) -> dict:
        return await self.request("GET", f"users/{self.quote(name)}")

    async def start_server(self, user: str, server: str, options: dict) -> None:
        await self.request("POST", f"users/{self.quote(user)}/servers/{self.quote(server)}",
                           body=options)

    async def stop_server(self, user: str, server: str) -> None:
        await self.request("DELETE", f"users/{self.quote(user)}/servers/{self.quote(server)}")

    async def server_token(self, user: str, server: str, note: str,
                           expires_in: int = 24 * 3600, scopes: tuple = ()) -> str:
        """A new token of ``user`` that may only use their server ``server`` (what a
        Binder client talks to the server with), and ``scopes`` besides."""
        model = await self.request("POST", f"users/{self.quote(user)}/tokens", body={
            "scopes": [f"access:servers!server={user}/{server}", *scopes],
            "expires_in": expires_in, "note": note})
        return model["token"]

    async def create_user(self, name: str) -> None:
        await self.request("POST", f"users/{self.quote(name)}", body={})

    async def delete_user(self, name: str) -> None:
        """Remove a user (the Hub stops their servers first); one already gone is fine."""
        try:
            await self.request("DELETE", f"users/{self.quote(name)}")
        except ReesError as e:
            if e.status != 404:
                raise

    async def note_activity(self, user: str, server: str, when: str) -> None:
        """Tell the Hub that ``user``'s server was used at ``when`` (ISO 8601), as a
        server's own activity reports do."""
        await self.request("POST", f"users/{self.quote(user)}/activity", body={
            "last_activity": when, "servers": {server: {"last_activity": when}}})

    async def active_users(self, page_size: int = 200) -> list[dict]:
        """Every user with a server that is ready or starting, with their servers."""
        users: list[dict] = []
        while True:
            page = await self.request(
                "GET", f"users?state=active&offset={len(users)}&limit={page_size}") or []
            users += page
            if len(page) < page_size:
                return users

    async def progress(self, user: str, server: str) -> AsyncIterator[dict]:
        """The Hub's progress events of a starting server, until it is ready or failed."""
        queue: asyncio.Queue = asyncio.Queue()
        buffer = b""

        def chunk(data: bytes) -> None:
            nonlocal buffer
            buffer += data
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for line in block.decode("utf-8", "replace").splitlines():
                    if line.startswith("data:"):
                        queue.put_nowait(json.loads(line[5:]))

        url = f"{self.api_url}/users/{self.quote(user)}/servers/{self.quote(server)}/progress"
        fetch = asyncio.ensure_future(AsyncHTTPClient().fetch(HTTPRequest(
            url, headers={"Authorization": f"token {self.token}"}, streaming_callback=chunk,
            request_timeout=3600), raise_error=False))
        try:
            while True:
                getting = asyncio.ensure_future(queue.get())
                await asyncio.wait([getting, fetch], return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    return  # the stream ended
                event = getting.result()
                yield event
                if event.get("ready") or event.get("failed"):
                    return
        finally:
            fetch.cancel()
