"""``tljh-rees client``: the rees service's JSON API from the command line.

Only the REST API under ``{HUB}/services/rees/api/`` is used, with ``requests``: this
runs on any machine that reaches the Hub, without the service's own code or database.

The token comes from the environment (``TLJH_REES_TOKEN``, else ``JUPYTERHUB_API_TOKEN``)
or from a file (``--token-file``), never from an option: a process's arguments are
visible to every user of the machine (``ps``), and typed ones stay in shell history.

Exit codes: 0 done, 1 the API refused or failed (or a build failed, or a launch was not
ready in time), 2 a usage error (argparse's, or no URL or token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse

import requests

TOKEN_ENV = ("TLJH_REES_TOKEN", "JUPYTERHUB_API_TOKEN")
URL_ENV = "TLJH_REES_URL"
API_PATH = "/services/rees/api/"
FINAL_BUILD_STATUS = ("built", "failed", "cancelled")
TIMEOUT = 60  # seconds for one request (a launch asks the Hub, which may be slow)
STREAM_READ_TIMEOUT = 120  # the service sends a keepalive every 15 s by default
STREAM_RETRIES = 5  # reconnections of a build's event stream without a new event
POLL_EVERY = 1.0

TOKEN_HELP = ("give a token in the environment, e.g. export TLJH_REES_TOKEN=$(cat "
              "~/.rees-token), or name a file holding it with --token-file PATH (a token is "
              "never taken as an option: command lines are visible to every user)")


class ClientError(Exception):
    """Ends the command with ``message`` on stderr and exit code ``code``."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


class StreamBroken(ClientError):
    """An event stream ended by the network, not by the service: worth resuming."""


# -- pure helpers (tests/unit/test_client.py) ------------------------------------------------

def sse_events(lines):
    """The JSON ``data`` of each server-sent event in ``lines`` (text lines without their
    newline); comments (keepalives) and the ``id:``/``event:`` fields are skipped, as the
    JSON carries the id and type too."""
    data = []
    for line in lines:
        if line == "":
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    if data:
        yield json.loads("\n".join(data))


def format_table(headers: list[str], rows: list[list]) -> str:
    """A plain text table, columns as wide as their widest cell; None shows as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = [headers, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip()
                     for line in lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_limits(limits: dict | None) -> str:
    """A template's limits as ``512M, 0.5 CPU`` (or '-' when neither is set)."""
    limits = limits or {}
    parts = []
    if limits.get("memory") is not None:
        parts.append(str(limits["memory"]))
    if limits.get("cpu") is not None:
        parts.append(f"{limits['cpu']:g} CPU")
    return ", ".join(parts) or "-"


def error_text(response: requests.Response) -> str:
    """One line for a refused request: the API's ``error`` and ``field``; a proxy's or the
    Hub's non-JSON answer by its status; a cap's ``Retry-After``."""
    try:
        text = api_error(response.json())
    except ValueError:
        text = None
    if text is None:
        text = f"HTTP {response.status_code} from {response.url}"
        if response.status_code == 404:
            text += " (is the rees service on this Hub? check --url)"
    retry = response.headers.get("Retry-After")
    if response.status_code == 429 and retry:
        text += f"; retry after {retry} s"
    return text


def api_error(body) -> str | None:
    """The API's error JSON as one line, its ``error`` and the ``field`` it names (most
    errors start with their field already)."""
    if not isinstance(body, dict) or not body.get("error"):
        return None
    error, field = str(body["error"]), body.get("field")
    if field and not error.startswith(f"{field}: "):
        error += f" (field: {field})"
    return error


def full_url(hub_url: str, location: str) -> str:
    """The Hub's URL of an API ``location`` (an absolute path, with the Hub's base URL)."""
    return urllib.parse.urljoin(hub_url.rstrip("/") + "/", location)


# -- the API -------------------------------------------------------------------------------

class Api:
    """Calls to one Hub's rees API. ``token`` None: calls go without a token (anonymous
    launches) unless a call gives its own."""

    def __init__(self, hub_url: str, token: str | None):
        self.hub_url = hub_url.rstrip("/")
        self.base = self.hub_url + API_PATH
        self.token = token
        self.session = requests.Session()

    def call(self, method: str, path: str, body=None, token: str | None = None,
             anonymous: bool = False, allow: tuple[int, ...] = ()):
        """The answer's JSON (None when it has no body). With ``allow``, statuses the
        caller handles: then ``(status, json)``, for those and for successes alike."""
        response = self._request(method, path, body=body,
                                 headers=self._auth(token, anonymous))
        if response.status_code >= 400 and response.status_code not in allow:
            raise ClientError(f"error: {error_text(response)}")
        return (response.status_code, _json(response)) if allow else _json(response)

    def events(self, path: str, last_id=None):
        """The events of a server-sent event stream, from after ``last_id``."""
        headers = self._auth(None, False)
        headers["Accept"] = "text/event-stream"
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        response = self._request("GET", path, headers=headers, stream=True,
                                 timeout=(TIMEOUT, STREAM_READ_TIMEOUT))
        with response:
            if response.status_code >= 400:
                raise ClientError(f"error: {error_text(response)}")
            # bytes, decoded here: requests would take text/event-stream as Latin-1
            lines = (line.decode("utf-8", "replace") for line in response.iter_lines())
            try:
                yield from sse_events(lines)
            except requests.RequestException as e:
                raise StreamBroken(f"error: the event stream from {self.hub_url} broke: "
                                   f"{e}") from None

    def _auth(self, token: str | None, anonymous: bool) -> dict:
        token = token or (None if anonymous else self.token)
        return {"Authorization": f"token {token}"} if token else {}

    def _request(self, method, path, body=None, timeout=TIMEOUT, **kwargs):
        try:
            return self.session.request(method, self.base + path, json=body,
                                        timeout=timeout, **kwargs)
        except requests.ConnectionError as e:
            raise ClientError(f"error: cannot reach {self.hub_url}: {_reason(e)}") from None
        except requests.Timeout:
            raise ClientError(f"error: {self.hub_url} did not answer in time") from None
        except requests.RequestException as e:
            raise ClientError(f"error: request to {self.hub_url} failed: {e}") from None


def _json(response: requests.Response):
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ClientError(f"error: {response.url} answered {response.status_code} without "
                          "JSON (is the rees service on this Hub? check --url)") from None


def _reason(error: requests.ConnectionError) -> str:
    """Why the connection failed ("[Errno 111] Connection refused"), without urllib3's
    wrapping of it."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return str(reason.__cause__ or reason) if reason is not None else str(error)


# -- output --------------------------------------------------------------------------------

def emit_json(value) -> None:
    """One JSON document a line (a build prints several: its events, then itself)."""
    print(json.dumps(value), flush=True)


class Progress:
    """One status line: rewritten in place on a terminal, else printed when it changes
    (so logs of scripts are not flooded with a line per poll)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last = None

    def show(self, text: str, elapsed: float) -> None:
        if self.tty:
            self.stream.write(f"\r{text} ({elapsed:.0f} s)\033[K")
            self.stream.flush()
        elif text != self.last:
            print(f"{text} ({elapsed:.0f} s)", file=self.stream, flush=True)
        self.last = text

    def done(self) -> None:
        if self.tty and self.last is not None:
            self.stream.write("\n")
            self.stream.flush()


# -- commands ------------------------------------------------------------------------------

def cmd_build(api: Api, args) -> int:
    body = {"repo": args.repo}
    if args.ref:
        body["ref"] = args.ref
    if args.name:
        body["name"] = args.name
    build = api.call("POST", "builds", body)
    if not args.json:
        where = f", position {build['queue_position']}" if build.get("queue_position") else ""
        print(f"build {build['id']} of {build['environment']} at "
              f"{(build.get('commit') or build.get('ref') or '')[:12]}: {build['status']}"
              f"{where}", flush=True)
    if build["status"] not in FINAL_BUILD_STATUS:
        follow_build(api, build["id"], args.json)
        build = api.call("GET", f"builds/{build['id']}")
    if args.json:
        emit_json(build)
    elif build["status"] == "built":
        print(f"built {build['environment']}: {build.get('image') or ''}".rstrip())
    else:
        print(f"build {build['status']}: {build.get('error') or 'see the log above'}",
              file=sys.stderr)
    return 0 if build["status"] == "built" else 1


def follow_build(api: Api, build_id: str, as_json: bool) -> None:
    """Print the build's events until its final phase. A dropped stream is resumed after
    the last event seen (``Last-Event-ID``), so no line is shown twice."""
    last_id, failures = None, 0
    while True:
        try:
            for event in api.events(f"builds/{build_id}/events", last_id):
                failures = 0
                last_id = event.get("id", last_id)
                show_event(event, as_json)
                if event.get("type") == "phase" and event.get("phase") in FINAL_BUILD_STATUS:
                    return
        except StreamBroken:
            failures += 1
            if failures > STREAM_RETRIES:
                raise
        if api.call("GET", f"builds/{build_id}")["status"] in FINAL_BUILD_STATUS:
            return
        time.sleep(POLL_EVERY)


def show_event(event: dict, as_json: bool) -> None:
    if as_json:
        emit_json(event)
    elif event.get("type") == "phase":
        print(f"[{event.get('phase')}] {event.get('message') or ''}".rstrip(), flush=True)
    else:
        print((event.get("message") or "").rstrip("\n"), flush=True)


def template_body(args) -> dict:
    """The template's fields given on the command line (hyphenated, as the API has them);
    only those given, so an update changes nothing else."""
    limits = {key: value for key, value in (("memory", args.memory), ("cpu", args.cpu))
              if value is not None}
    body = {"image-name": args.image_name, "limits": limits or None,
            "cull-timeout": args.cull_timeout, "max-age": args.max_age,
            "max-servers": args.max_servers, "anonymous": args.anonymous,
            "allowed-users": args.allowed_user}
    return {key: value for key, value in body.items() if value is not None}


def cmd_register(api: Api, args) -> int:
    body = template_body(args)
    path = f"templates/{args.template}"
    if args.update and api.call("GET", path, allow=(404,))[0] == 200:
        template, action = api.call("PATCH", path, body), "updated"
    else:
        if "image-name" not in body:
            raise ClientError("error: --image-name ENV is needed to register a template", 2)
        status, template = api.call("POST", "templates", {"name": args.template, **body},
                                    allow=(409,))
        if status == 409:
            raise ClientError(f"error: {api_error(template)}\nrun again with --update "
                              f"to change it with the options given (PATCH api/{path})")
        action = "registered"
    if args.json:
        emit_json(template)
    else:
        print(f"{action} template {template['name']}: image {template['image-name']}, "
              f"status {template.get('status', '-')}, anonymous "
              f"{_cell(template.get('anonymous'))}, limits {format_limits(template['limits'])}")
    return 0


def cmd_launch(api: Api, args) -> int:
    path = f"applications/{args.template}"
    if not args.anonymous and not api.token:
        raise ClientError(f"error: launching signed in needs a token: {TOKEN_HELP}; or "
                          "use --anonymous for a template open to anonymous visitors", 2)
    app = api.call("POST", path, anonymous=args.anonymous)
    token = app.get("token")  # an anonymous launch's own, for its server and its record
    app = wait_ready(api, f"{path}/{app['id']}", app, token, args.timeout, args.json)
    url = full_url(api.hub_url, app["location"])
    if args.json:
        emit_json({**app, "url": url, **({"token": token} if token else {})})
        return 0
    print(f"ready: {url}")
    if token:
        print("This server's token (keep it secret: it opens this server). Send it as the "
              "header 'Authorization: token <TOKEN>', or add ?token=<TOKEN> to the URL in "
              "a browser:")
        print(token)
    return 0


def wait_ready(api: Api, path: str, app: dict, token: str | None, timeout: float,
               quiet: bool) -> dict:
    """Poll the application until it is ready; ClientError after ``timeout`` seconds."""
    started = time.monotonic()
    progress = None if quiet else Progress()
    try:
        while not app.get("ready"):
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise ClientError(f"error: {app['id']} was not ready within {timeout:g} s "
                                  f"(last state: {app.get('pending') or 'not ready'})")
            if progress:
                progress.show(f"starting {app['id']}: {app.get('pending') or 'waiting'}",
                              elapsed)
            time.sleep(POLL_EVERY)
            app = api.call("GET", path, token=token)
    finally:
        if progress:
            progress.done()
    return app


POOL_COLUMNS = ["template", "size", "available", "running", "starting", "claimed-last-hour"]


def cmd_pools(api: Api, args) -> int:
    if args.template is None:
        if args.size is not None or args.delete:
            raise ClientError("error: name the TEMPLATE whose pool to change", 2)
        pools = api.call("GET", "pools")["pools"]
        if args.json:
            emit_json({"pools": pools})
        else:
            print(pools_text(pools))
        return 0
    path = f"pools/{args.template}"
    if args.delete:
        api.call("DELETE", path)
        if args.json:
            emit_json({"template": args.template, "deleted": True})
        else:
            print(f"deleted the pool of {args.template}")
        return 0
    pool = api.call("POST", path, {"size": args.size}) if args.size is not None \
        else api.call("GET", path)
    if args.json:
        emit_json(pool)
    else:
        print(pools_text([pool]))
    return 0


def pools_text(pools: list[dict]) -> str:
    if not pools:
        return "no pools"
    text = format_table(POOL_COLUMNS, [[p.get(c) for c in POOL_COLUMNS] for p in pools])
    problems = [f"{p['template']}: {p['error']}" for p in pools if p.get("error")]
    return "\n".join([text, *problems])


def cmd_status(api: Api, args) -> int:
    templates = api.call("GET", "templates")["templates"]
    applications = api.call("GET", "applications")["applications"]
    status, pools = api.call("GET", "pools", allow=(403,))  # only admins see pools
    pools = pools["pools"] if status == 200 else None
    if args.json:
        emit_json({"templates": templates, "applications": applications,
                   **({"pools": pools} if pools is not None else {})})
        return 0
    print("Templates")
    print(format_table(["name", "image-name", "status", "anonymous", "limits"],
                       [[t["name"], t["image-name"], t.get("status"), t.get("anonymous"),
                         format_limits(t.get("limits"))] for t in templates])
          if templates else "  none")
    print("\nYour applications")
    print(format_table(["id", "template", "environment", "ready", "url"],
                       [[a["id"], a.get("template"), a.get("environment"), a.get("ready"),
                         full_url(api.hub_url, a["location"])] for a in applications])
          if applications else "  none")
    if pools is not None:
        print("\nPools")
        print(pools_text(pools))
    return 0


COMMANDS = {"build": cmd_build, "register": cmd_register, "launch": cmd_launch,
            "pools": cmd_pools, "status": cmd_status}
NEEDS_TOKEN = {"build", "register", "pools", "status"}  # launch: unless --anonymous


# -- arguments -----------------------------------------------------------------------------

def read_token(token_file: str | None) -> str | None:
    if token_file:
        try:
            with open(token_file) as f:
                token = f.read().strip()
        except OSError as e:
            raise ClientError(f"error: cannot read the token file {token_file}: "
                              f"{e.strerror}", 2) from None
        if not token:
            raise ClientError(f"error: the token file {token_file} is empty", 2)
        return token
    for name in TOKEN_ENV:
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    return None


def check_url(given: str | None) -> str:
    url = given or os.environ.get(URL_ENV, "")
    if not url:
        raise ClientError(f"error: give the Hub's URL with --url HUB or in {URL_ENV}", 2)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ClientError(f"error: --url {url!r}: expected the Hub's http(s) URL, like "
                          "https://hub.example.org", 2)
    return url


def cmd_client(args) -> int:
    try:
        api = Api(check_url(getattr(args, "url", None)),
                  read_token(getattr(args, "token_file", None)))
        if args.client_command in NEEDS_TOKEN and not api.token:
            raise ClientError(f"error: '{args.client_command}' needs a token: {TOKEN_HELP}",
                              2)
        args.json = getattr(args, "json", False)
        return COMMANDS[args.client_command](api, args)
    except ClientError as e:
        print(e, file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _common_options() -> argparse.ArgumentParser:
    """Options taken before or after the command (``client --json status`` and ``client
    status --json``); SUPPRESS keeps a subcommand's unset default from hiding the
    client-level value."""
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"the Hub's URL (default: ${URL_ENV})")
    common.add_argument("--token-file", metavar="PATH", default=argparse.SUPPRESS,
                        help="read the token from this file (default: $TLJH_REES_TOKEN, "
                             "else $JUPYTERHUB_API_TOKEN)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the API's JSON instead of text")
    return common


def add_client_parser(sub) -> None:
    """The ``client`` subcommand of ``tljh-rees``. Every parser has ``allow_abbrev``
    off, or ``--token VALUE`` would be taken as ``--token-file VALUE``."""
    common = _common_options()
    client = sub.add_parser(
        "client", parents=[common], allow_abbrev=False,
        help="use a Hub's rees service through its API (build, register, launch, pools, "
             "status)",
        description="Use a Hub's rees service through its JSON API. The token comes from "
                    "TLJH_REES_TOKEN (else JUPYTERHUB_API_TOKEN) or --token-file, never from "
                    "an option: command lines are visible to every user of the machine.")
    commands = client.add_subparsers(dest="client_command", required=True)

    def command(name, help_text):
        return commands.add_parser(name, parents=[common], allow_abbrev=False,
                                   help=help_text, description=help_text)

    build = command("build", "build a repository into an environment and follow its log "
                             "(exit 1 if the build fails); --json prints each event, then "
                             "the build, as JSON lines")
    build.add_argument("repo", help="the repository's git URL")
    build.add_argument("--ref", help="branch, tag or commit (default: HEAD)")
    build.add_argument("--name", help="the environment's name (default: from the URL)")

    register = command("register", "register a template of an environment (or with "
                                   "--update, change one)")
    register.add_argument("template", help="the template's name")
    register.add_argument("--image-name", metavar="ENV",
                          help="the environment (or an image the admin allows) it runs")
    register.add_argument("--memory", help="memory limit, like 512M or 2G")
    register.add_argument("--cpu", type=float, help="CPU limit, like 0.5")
    register.add_argument("--cull-timeout", type=int, metavar="S",
                          help="stop servers idle this many seconds")
    register.add_argument("--max-age", type=int, metavar="S",
                          help="stop servers this many seconds after they start")
    register.add_argument("--max-servers", type=int, metavar="N",
                          help="at most this many servers at once (0: no cap)")
    register.add_argument("--anonymous", action=argparse.BooleanOptionalAction,
                          help="whether visitors without an account may launch it")
    register.add_argument("--allowed-user", action="append", metavar="NAME",
                          help="who may launch it signed in (repeatable; none: everyone)")
    register.add_argument("--update", action="store_true",
                          help="if the template exists, change it (PATCH) with the options "
                               "given")

    launch = command("launch", "launch a template and wait until its server is ready")
    launch.add_argument("template")
    launch.add_argument("--anonymous", action="store_true",
                        help="launch without a token, as a visitor without an account; "
                             "prints the server's own token")
    launch.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for the server (default 300)")

    pools = command("pools", "list the warm pools (admins); with TEMPLATE, show, resize "
                             "(--size) or delete (--delete) its pool")
    pools.add_argument("template", nargs="?")
    change = pools.add_mutually_exclusive_group()
    change.add_argument("--size", type=int, metavar="N", help="keep N servers ready")
    change.add_argument("--delete", action="store_true",
                        help="delete the pool and stop its unclaimed servers")

    command("status", "templates, your applications and (admins) the pools")
    client.set_defaults(func=cmd_client)
