"""The OpenAPI 3.1 document of every route of the service, served at ``api/openapi.json``.

It lives beside the route table on purpose: ``tests/test_openapi.py`` checks that each
route of ``ReesService.handlers()`` (its regex, and every method its handler implements)
is described here and that nothing described here is missing from the routes, so a new
route or method cannot be forgotten. Path parameters carry the route's own regex.

The document is served without a token: it says what the source says (the API's shape)
and holds no data — no environment, user or profile name — and tools such as client
generators and schemathesis read it before they hold a token.
"""

from __future__ import annotations

import copy
import json

from tornado import web

from .. import __version__
from ..builds.events import FINAL_PHASES
from ..catalog.catalog import DESCRIPTION_MAX, DISPLAY_NAME_MAX, MAX_PAGE
from ..composer.paths import RESERVED, SPEC_NAME_MAX
from ..composer.sections import SECTION_IDS
from .base import APIHandler

JSON = "application/json"
HTML = "text/html"


# -- small builders -----------------------------------------------------------------------

def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict) -> dict:
    if "type" in schema and isinstance(schema["type"], str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict, required=(), closed: bool = False, **extra) -> dict:
    """An object; ``required`` names its always-present keys; a ``closed`` one (request
    bodies) takes no other key, as ``APIHandler.json_body`` refuses unknown fields."""
    schema = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    return schema


STRING, BOOL, INT = {"type": "string"}, {"type": "boolean"}, {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
URL = {"type": "string", "description": "a path on this Hub"}

ERROR_TEXT = {
    400: "Bad input; `field` names the part of the request that is wrong.",
    403: "No token, a token that may not use the service, or no permission for this.",
    404: "Not found, or not visible to the caller (others' private environments are not "
         "confirmed to exist).",
    409: "Conflicts with the current state (named in `error`).",
    413: "The request body is too large.",
    405: "A reserved name (validate, preview, import) is another route, which does not "
         "take this method.",
    415: "Unsupported request content type.",
    422: "Understood but cannot be done (e.g. a repository that cannot be read).",
    429: "Over a cap or a quota (named in `error`, with the current use); `Retry-After` "
         "says when to try again.",
    502: "The Hub did not answer as expected.",
}


def errors(*codes: int, schema: str = "Error") -> dict:
    return {str(code): {"description": ERROR_TEXT[code],
                        "content": {JSON: {"schema": ref(schema)}}} for code in codes}


def ok(schema: dict | str, description: str = "OK", status: int = 200,
       media: str = JSON, headers: dict | None = None) -> dict:
    body = {"description": description,
            "content": {media: {"schema": ref(schema) if isinstance(schema, str) else schema}}}
    if headers:
        body["headers"] = headers
    return {str(status): body}


def no_content(status: int, description: str) -> dict:
    return {str(status): {"description": description}}


def body(schema: dict | str, media: str = JSON, required: bool = True) -> dict:
    return {"required": required,
            "content": {media: {"schema": ref(schema) if isinstance(schema, str) else schema}}}


def query(name: str, schema: dict, description: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def path_param(name: str, pattern: str, description: str, **extra) -> dict:
    """``pattern`` is the route's own regex group: the test compares them."""
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "pattern": f"^{pattern}$", **extra}}


def op(summary: str, responses: dict, tag: str, **fields) -> dict:
    return {"summary": summary, "tags": [tag], "responses": responses, **fields}


# -- parameters (the patterns are the route table's) -----------------------------------

BUILD_ID = path_param("build_id", "[0-9a-f]+", "A build's id.")
ENV_NAME = path_param("name", "[a-z0-9._-]+", "An environment's name.")
EXPORT_ID = path_param("export_id", "[0-9a-f]{64}", "An export's id (its image's sha256).")
SERVER_NAME = path_param("server_name", "[^/]+", "The name of one of the caller's servers.")
SPEC_NAME = path_param("name", "[a-z0-9][a-z0-9._-]*", "A spec's name.",
                       **{"not": {"enum": sorted(RESERVED)}})
GALLERY_NAME = path_param("name", "[^/]+", "An environment's name.")
NOTEBOOK_PATH = path_param("path", ".+", "A notebook's path in the repository.")
SPEC_VERSION = query("version", {"type": "string", "pattern": "^[0-9a-f]{7,40}$"},
                     "A version (commit sha or prefix) of the spec; default: the newest.")
PAGE_QUERY = [query("offset", {**INT, "minimum": 0}, "Skip this many."),
              query("limit", {**INT, "minimum": 1, "maximum": MAX_PAGE},
                    f"At most this many (default 50, at most {MAX_PAGE}).")]
GALLERY_FILTERS = [query("q", STRING, "Words, each found in a name, description, "
                                      "repository, owner or package."),
                   query("repo", STRING, "Only this repository (exact)."),
                   query("package", STRING, "Only environments declaring this package.")]

# -- schemas ------------------------------------------------------------------------------

BUILD_STATUS = ["queued", "running", "built", "failed", "cancelled"]
SERVICE_SPEC = obj({
    "name": {"type": "string", "description": "A kind the site offers (rees.services): "
                                              "postgres, redis."},
    "version": {"type": "string", "description": "Default: the site's version."},
    "params": {"type": "object", "description": "The kind's parameters; unset ones take "
                                                "the site's defaults."},
}, required=("name",), closed=True)
SERVICE_LIST = {"type": "array", "items": SERVICE_SPEC, "maxItems": 20}

SCHEMAS = {
    "Error": obj({"error": STRING, "status": {"type": "integer", "minimum": 400,
                                              "maximum": 599},
                  "field": STRING}, required=("error", "status"), closed=True,
                 description="Every error of the JSON API."),
    "SpecError": obj({"error": STRING, "status": {"type": "integer", "minimum": 400,
                                                  "maximum": 599},
                      "field": STRING, "problems": {"type": "array", "items": ref("Problem")}},
                     required=("error", "status"), closed=True,
                     description="Errors of the composer's routes: a refused save also lists "
                                 "every problem of its sections."),
    "Problem": obj({"section": {"enum": list(SECTION_IDS)}, "file": STRING,
                    "line": nullable({"type": "integer", "minimum": 1}), "message": STRING,
                    "severity": {"enum": ["error", "warning"]}},
                   required=("section", "file", "line", "message", "severity")),
    "Health": obj({"status": {"enum": ["ok", "degraded"]},
                   "docker": {"enum": ["ok", "unreachable"]}}, required=("status", "docker")),
    "Versions": obj({k: STRING for k in ("tljh-rees", "jupyterhub", "repo2docker", "python")},
                    required=("tljh-rees", "jupyterhub", "repo2docker", "python")),
    "User": obj({
        "name": STRING, "admin": BOOL, "can_build": BOOL, "build_reason": nullable(STRING),
        "profiles": {"type": "array", "items": obj({"name": STRING, "description": STRING},
                                                   required=("name", "description"))},
        "default_profile": STRING,
        "import_limits": obj({k: INT for k in ("max_files", "max_file_bytes",
                                               "max_total_bytes")},
                             required=("max_files", "max_file_bytes", "max_total_bytes")),
    }, required=("name", "admin", "can_build", "build_reason", "profiles", "default_profile",
                 "import_limits")),
    "ImportCheck": obj({
        "buildpack": nullable(STRING), "buildpack_label": nullable(STRING),
        "dockerfile": nullable(STRING), "messages": {"type": "array", "items": STRING},
        "error": nullable(STRING), "stage": nullable({"enum": ["detect", "render"]}),
        "problems": {"type": "array", "items": ref("Problem")},
        "rees_files": {"type": "array", "items": STRING}, "files": INT,
        "name": nullable(STRING), "replaces": BOOL,
    }, required=("buildpack", "dockerfile", "error", "problems", "rees_files", "files",
                 "name", "replaces"),
        description="What an import would save: its REES files and repo2docker's view."),
    "Build": obj({
        "id": STRING, "environment": STRING, "repo": STRING, "ref": STRING,
        "commit": nullable(STRING), "image": nullable(STRING),
        "status": {"enum": BUILD_STATUS},
        "queue_position": nullable({"type": "integer", "minimum": 1}),
        "cache_hit": BOOL, "owner": STRING, "profile": STRING, "error": nullable(STRING),
        "created": TIME, "started": nullable(TIME), "finished": nullable(TIME),
        "spec_version": nullable(STRING), "url": URL, "events_url": URL,
    }, required=("id", "environment", "repo", "ref", "commit", "image", "status",
                 "queue_position", "cache_hit", "owner", "profile", "error", "created",
                 "started", "finished", "spec_version", "url", "events_url")),
    "BuildEvent": obj({"id": INT, "type": {"enum": ["phase", "log"]},
                       "phase": {"enum": ["queued", "running", *FINAL_PHASES]},
                       "message": STRING}, required=("type", "message"),
                      description="A phase change or a log line of a build."),
    "BuildStreamEvent": obj({
        "id": {"type": "string", "pattern": "^[0-9]+$"}, "event": {"enum": ["phase", "log"]},
        "data": {"type": "string", "contentMediaType": JSON,
                 "contentSchema": ref("BuildEvent")},
    }, required=("event", "data"), description="One server-sent event."),
    "BuildList": obj({"builds": {"type": "array", "items": ref("Build")}},
                     required=("builds",)),
    "Limits": obj({"cpu": nullable({"type": "number"}), "memory": nullable(INT)},
                  required=("cpu", "memory"),
                  description="The profile's limits: CPUs, and memory in bytes."),
    "Environment": obj({
        "name": STRING, "display_name": STRING, "description": STRING, "repo": STRING,
        "ref": STRING, "commit": nullable(STRING),
        "image": nullable(STRING), "image_size": nullable(INT), "owner": STRING,
        "registry_image": nullable({"type": "string", "description": "Multi-node mode: "
                                    "the image in the registry every node pulls from, "
                                    "by digest."}),
        "profile": nullable(STRING), "limits": ref("Limits"), "public": BOOL,
        "status": {"enum": [*BUILD_STATUS, "missing"]},
        "pinned": {"type": "boolean", "description": "An admin pinned it: disk garbage "
                   "collection never removes its current image."},
        "last_launched": nullable(TIME),
        "spec_name": nullable(STRING), "spec_version": nullable(STRING),
        "created": nullable(TIME), "updated": nullable(TIME), "built": nullable(TIME),
        "last_build": {"anyOf": [ref("Build"), {"type": "null"}]}, "url": URL,
        "services": {"type": "array", "items": obj(
            {"name": STRING, "version": STRING, "params": {"type": "object"}},
            required=("name", "version", "params")),
            "description": "Add-on services every launch of it gets (its default "
                           "services): set by PATCH, or by a build of a repository "
                           "declaring them in .rees/services.json."},
    }, required=("name", "display_name", "description", "repo", "ref", "commit", "image",
                 "image_size", "owner", "profile", "limits", "public", "status", "services",
                 "pinned", "last_launched", "spec_name", "spec_version", "created",
                 "updated", "built", "last_build",
                 "url")),
    "EnvironmentPage": obj({
        "environments": {"type": "array", "items": ref("Environment")},
        "total": {"type": "integer", "minimum": 0}, "offset": {"type": "integer", "minimum": 0},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        "next": nullable(URL),
    }, required=("environments", "total", "offset", "limit", "next")),
    "Application": obj({
        "id": STRING, "environment": nullable(STRING), "template": nullable(STRING),
        "profile": nullable(STRING), "ready": BOOL, "pending": nullable(STRING),
        "started": nullable(STRING), "location": URL,
        "progress": {**URL, "description": "The Hub's event stream of the start (while "
                                           "not ready)."},
        "user": {**STRING, "description": "Whose it is (in an admin's lists)."},
        "token": {**STRING, "description": "Anonymous launches only: a token that may use "
                                           "this server (`?token=` or the Authorization "
                                           "header) and look at or stop it here."},
        "pooled": {**BOOL, "description": "Anonymous launches only: claimed from the pool."},
    }, required=("id", "environment", "profile", "ready", "pending", "started", "location")),
    "ApplicationList": obj({"applications": {"type": "array", "items": ref("Application")}},
                           required=("applications",)),
    "Export": obj({
        "id": STRING, "environment": STRING, "image": STRING, "image_id": STRING,
        "commit": nullable(STRING), "filename": STRING,
        "status": {"enum": ["queued", "running", "done", "failed"]},
        "step": nullable(STRING), "steps": {"type": "array", "items": STRING},
        "progress": nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "error": nullable(STRING), "created": STRING, "finished": nullable(STRING),
        "size": nullable(INT), "sha256": nullable(STRING), "pushed_to": nullable(STRING),
        "push": BOOL, "url": URL, "download_url": nullable(URL),
        "registry_ref": {**nullable(STRING), "description": (
            "Multi-node mode: the environment's image in the registry, by digest; pulled "
            "from there when this machine no longer has it.")},
        "commands": obj({"download": STRING, "run": STRING, "pull": STRING}),
    }, required=("id", "environment", "image", "filename", "status", "url",
                 "download_url", "commands")),
    "ExportList": obj({"exports": {"type": "array", "items": ref("Export")}},
                      required=("exports",)),
    "GalleryNotebookEntry": obj({"path": STRING, "size": INT, "url": URL, "launch_url": URL,
                                 "problem": STRING},
                                required=("path", "size", "url", "launch_url")),
    "GalleryEntry": obj({
        "name": STRING, "display_name": STRING, "description": STRING, "repo": STRING,
        "ref": STRING, "commit": nullable(STRING), "owner": STRING, "created": nullable(TIME),
        "public": BOOL, "image": nullable(STRING),
        "packages": {"type": "object",
                     "additionalProperties": {"type": "array", "items": STRING}},
        "notebooks": {"type": "array", "items": ref("GalleryNotebookEntry")},
        "notebooks_truncated": BOOL, "files_truncated": BOOL, "readme": STRING,
        "problem": nullable(STRING), "url": URL, "launch_url": URL,
    }, required=("name", "display_name", "description", "repo", "ref", "commit", "owner",
                 "created", "public", "image", "packages", "notebooks",
                 "notebooks_truncated", "files_truncated", "readme", "problem", "url",
                 "launch_url")),
    "GalleryPage": obj({
        "environments": {"type": "array", "items": ref("GalleryEntry")},
        "total": {"type": "integer", "minimum": 0}, "offset": {"type": "integer", "minimum": 0},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    }, required=("environments", "total", "offset", "limit")),
    "GalleryNotebook": obj({"path": STRING, "size": INT, "html_url": URL, "url": URL,
                            "launch_url": URL},
                           required=("path", "size", "html_url", "url", "launch_url")),
    "SpecSummary": obj({
        "name": STRING, "owner": STRING, "display_name": STRING, "description": STRING,
        "created": STRING, "forked_from": STRING, "version": nullable(STRING),
        "updated": nullable(STRING),
        "links": obj({"page": URL, "api": URL, "zip": URL}, required=("page", "api", "zip")),
        "may_edit": BOOL,
    }, required=("name", "owner", "version", "links", "may_edit")),
    "SpecList": obj({"specs": {"type": "array", "items": ref("SpecSummary")}},
                    required=("specs",)),
    "Sections": obj({s: STRING for s in SECTION_IDS},
                    description="The text of each composer section (its file's content)."),
    "Spec": {"allOf": [ref("SpecSummary"), obj({
        "newest_version": nullable(STRING), "sections": ref("Sections"),
        "section_files": {"type": "object", "additionalProperties": STRING},
        "config_dir": STRING,
        "files": {"type": "array", "items": obj({"path": STRING, "size": INT,
                                                 "executable": BOOL},
                                                required=("path", "size", "executable"))},
        "problems": {"type": "array", "items": ref("Problem")},
    }, required=("sections", "files", "problems"))]},
    "SpecVersions": obj({"versions": {"type": "array", "items": obj(
        {"version": STRING, "author": STRING, "created": STRING, "message": STRING},
        required=("version", "author", "created", "message"))}}, required=("versions",)),
    "Validation": obj({"problems": {"type": "array", "items": ref("Problem")},
                       "valid": BOOL}, required=("problems", "valid")),
    "Preview": obj({
        "buildpack": nullable(STRING), "buildpack_label": nullable(STRING),
        "dockerfile": nullable(STRING), "messages": {"type": "array", "items": STRING},
        "error": nullable(STRING), "stage": nullable({"enum": ["detect", "render"]}),
        "problems": {"type": "array", "items": ref("Problem")},
        "version": nullable(STRING),
    }, required=("buildpack", "dockerfile", "error", "version"),
        description="repo2docker's own choice of build pack and the Dockerfile it makes."),
    # -- request bodies: exactly the fields each handler accepts --
    "BuildRequest": obj({
        "repo": {"type": "string", "minLength": 1, "maxLength": 2048,
                 "description": "git URL: https, http, git, ssh (file:// and paths only "
                                "where the admin allows local repositories)."},
        "ref": nullable({"type": "string", "maxLength": 255,
                         "description": "Branch, tag or commit; default HEAD."}),
        "name": nullable({"type": "string", "maxLength": 63,
                          "pattern": "^[a-z0-9]+(?:[._-][a-z0-9]+)*$"}),
        "profile": nullable(STRING),
        "credentials": nullable(obj({"username": STRING, "password": STRING}, closed=True)),
        "display_name": nullable({"type": "string", "maxLength": DISPLAY_NAME_MAX}),
        "description": nullable({"type": "string", "maxLength": DESCRIPTION_MAX}),
        "public": nullable(BOOL),
    }, required=("repo",), closed=True),
    "EnvironmentChange": obj({
        "display_name": nullable({"type": "string", "maxLength": DISPLAY_NAME_MAX}),
        "description": nullable({"type": "string", "maxLength": DESCRIPTION_MAX}),
        "profile": nullable({"type": "string",
                             "description": "A profile name; null or '': the site's."}),
        "public": nullable(BOOL),
        "services": {**SERVICE_LIST, "description": "The environment's default add-on "
                     "services, checked against the site's offer (an error names the "
                     "field, e.g. services[0].params.maxmemory); [] for none."},
        "pinned": nullable({"type": "boolean",
                            "description": "Admins only: keep its image through disk "
                                           "garbage collection."}),
    }, closed=True),
    "ApplicationRequest": obj({
        "environment": {"type": "string", "minLength": 1},
        "server_name": nullable({"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,62}$"}),
        "profile": nullable(STRING),
        "cluster": nullable(obj({
            "partition": nullable(STRING), "walltime": nullable(STRING),
            "cpus": nullable({"type": ["integer", "string"]}), "memory": nullable(STRING),
        }, closed=True, description="Run it as a Slurm job (rees.hpc), with these choices "
                                    "within the site's limits; null: on this machine.")),
    }, required=("environment",), closed=True),
    "ExportRequest": obj({}, closed=True, description="No fields."),
    "SpecCreate": obj({
        "name": {"type": "string", "maxLength": SPEC_NAME_MAX,
                 "pattern": "^[a-z0-9]+(?:[._-][a-z0-9]+)*$"},
        "display_name": nullable({"type": "string", "maxLength": DISPLAY_NAME_MAX}),
        "description": nullable({"type": "string", "maxLength": DESCRIPTION_MAX}),
        "sections": nullable(ref("Sections")), "message": nullable(STRING),
        "from_environment": nullable(STRING), "from_spec": nullable(STRING),
        "from_version": nullable(STRING),
    }, required=("name",), closed=True,
        description="Start from `sections`, or from a built environment's files "
                    "(`from_environment`), or from a spec (`from_spec`, `from_version`)."),
    "SpecSave": obj({
        "display_name": nullable({"type": "string", "maxLength": DISPLAY_NAME_MAX}),
        "description": nullable({"type": "string", "maxLength": DESCRIPTION_MAX}),
        "sections": ref("Sections"), "message": nullable(STRING),
        "base_version": nullable({"type": "string", "description": "The version the edit "
                                  "started from; a newer one on the server is a 409."}),
    }, closed=True),
    "SpecCheck": obj({"sections": nullable(ref("Sections")), "spec": nullable(STRING)},
                     closed=True),
    "SpecPreviewRequest": obj({"sections": nullable(ref("Sections")),
                               "spec": nullable(STRING), "version": nullable(STRING)},
                              closed=True),
    "SpecBuild": obj({
        "version": nullable(STRING),
        "environment": nullable({"type": "string", "maxLength": 63,
                                 "pattern": "^[a-z0-9]+(?:[._-][a-z0-9]+)*$"}),
        "profile": nullable(STRING), "public": nullable(BOOL),
        "display_name": nullable({"type": "string", "maxLength": DISPLAY_NAME_MAX}),
        "description": nullable({"type": "string", "maxLength": DESCRIPTION_MAX}),
    }, closed=True),
}

# -- pages: HTML for people; an anonymous GET is sent to the Hub's login --------------

LOGIN_REDIRECT = {"302": {"description": "Not logged in: to the Hub's login, or (on "
                                         "success) where the page sends the browser."}}
PAGE_ERRORS = {str(code): {"description": ERROR_TEXT[code], "content": {HTML: {}}}
               for code in (400, 403, 404, 409)}


def page(summary: str, *codes: int, tag: str = "pages", **fields) -> dict:
    responses = {"200": {"description": "The page.", "content": {HTML: {}}}, **LOGIN_REDIRECT}
    responses.update({str(c): PAGE_ERRORS[str(c)] for c in codes})
    return op(summary, responses, tag, **fields)


PAGES = {
    "/": {"get": page("The Environments page.", 403)},
    "/environments": {"get": op("The front page's older address.", {
        "302": {"description": "To the front page."}}, "pages", security=[])},
    "/servers": {"get": page("The caller's servers started from environments.", 403)},
    "/templates": {"get": page("Templates the caller may see; registering them (builders) "
                               "and their warm pools (admins).", 403)},
    "/dashboard": {"get": page("Admins only: build durations, the build queue, the Docker "
                               "data disk against the GC's watermarks, launches and recent "
                               "failed builds, as server-drawn SVG charts.", 400, 403,
                               parameters=[query("range", {"type": "string",
                                                           "enum": ["day", "week"]},
                                                 "The time shown (default: day).")])},
    "/launch/{environment}": {
        "parameters": [path_param("environment", "[a-z0-9._-]+", "An environment's name.")],
        "get": page("What a launch link would start; starts nothing.", 400, 403, 404, 409,
                    parameters=[query("profile", STRING), query("urlpath", STRING)]),
        "post": op("Start (or reuse) the server, then follow its progress.", {
            "302": {"description": "To the server, or to the Hub's progress page."},
            **{str(c): PAGE_ERRORS[str(c)] for c in (400, 403, 404, 409)},
            "502": {"description": ERROR_TEXT[502], "content": {HTML: {}}}}, "pages",
            requestBody=body(obj({"profile": STRING, "urlpath": STRING,
                                  "_xsrf": STRING}),
                             media="application/x-www-form-urlencoded", required=False)),
    },
    "/environments/{name}/export": {
        "parameters": [ENV_NAME],
        "get": page("Export an environment for HPC (SIF).", 403, 404, 409)},
    "/composer": {"get": page("The composer.", 403)},
    "/composer/{name}": {
        "parameters": [SPEC_NAME],
        "get": page("The composer with a spec open.", 400, 403, 404,
                    parameters=[SPEC_VERSION])},
    "/gallery": {"get": page("The gallery.", 400, 403, parameters=[
        *GALLERY_FILTERS, query("offset", {**INT, "minimum": 0})])},
    "/gallery/{name}": {"parameters": [GALLERY_NAME],
                        "get": page("An environment in the gallery.", 403, 404)},
    "/gallery/{name}/notebooks/{path}": {
        "parameters": [GALLERY_NAME, NOTEBOOK_PATH],
        "get": page("A notebook's page (the rendering is in a sandboxed frame).", 403, 404)},
    "/gallery/{name}/render/{path}": {
        "parameters": [GALLERY_NAME, NOTEBOOK_PATH],
        "get": page("A notebook rendered statically, as its own sandboxed document "
                    "(Content-Security-Policy: sandbox).", 403, 404)},
}
PAGES["/gallery/{name}/render/{path}"]["get"]["responses"]["422"] = {
    "description": "The notebook cannot be shown (named in the page).", "content": {HTML: {}}}

# -- the JSON API ---------------------------------------------------------------------------

LOCATION = {"Location": {"schema": STRING, "description": "The new spec's API URL."}}
API = {
    "/api/openapi.json": {"get": op("This document.", ok({"type": "object"}), "service",
                                    security=[])},
    "/api/health": {"get": op("Liveness, with the Docker engine's state.", ok("Health"),
                              "service", security=[])},
    "/api/versions": {"get": op("Versions of the service and its parts.",
                                {**ok("Versions"), **errors(403)}, "service")},
    "/api/user": {"get": op("The caller: whether they may build (and if not, why), the "
                            "profiles they may choose and the limits of an import.",
                            {**ok("User"), **errors(403)}, "service")},
    "/api/builds": {
        "get": op("Builds of the environments the caller may see, newest first.",
                  {**ok("BuildList"), **errors(400, 403)}, "builds", parameters=[
                      query("environment", STRING, "Only this environment's builds."),
                      query("limit", {**INT, "minimum": 1, "maximum": MAX_PAGE},
                            f"At most this many (default and most: {MAX_PAGE}).")]),
        "post": op("Build a repository into an environment (needs the build permission).",
                   {**ok("Build", "Already built (cache); nothing ran."),
                    **ok("Build", "Queued (or joined a running build).", 202),
                    **errors(400, 403, 409, 413, 422, 429)}, "builds",
                   requestBody=body("BuildRequest")),
    },
    "/api/builds/{build_id}": {
        "parameters": [BUILD_ID],
        "get": op("One build.", {**ok("Build"), **errors(403, 404)}, "builds"),
        "delete": op("Cancel a queued or running build (its owner or an admin).",
                     {**ok("Build", "Cancelled."), **errors(403, 404, 409)}, "builds"),
    },
    "/api/builds/{build_id}/events": {
        "parameters": [BUILD_ID],
        "get": op("Server-sent events: `phase` and `log` events with ids; replays, then "
                  "follows the build, ending with its final phase.",
                  {**ok("BuildStreamEvent", "An event stream; the schema is each event's.",
                        media="text/event-stream"),
                   **errors(400, 403, 404)}, "builds", parameters=[
                      {"name": "Last-Event-ID", "in": "header", "required": False,
                       "schema": {"type": "string", "pattern": "^[0-9]+$"},
                       "description": "Resume after this event."},
                      query("after", {"type": "string", "pattern": "^[0-9]+$"},
                            "Resume after this event (for clients that cannot set "
                            "headers).")]),
    },
    "/api/builds/{build_id}/log": {
        "parameters": [BUILD_ID],
        "get": op("The build's log so far, as text.",
                  {**ok({"type": "string"}, "The log (an attachment).",
                        media="text/plain"), **errors(403, 404)}, "builds"),
    },
    "/api/environments": {
        "get": op("A page of the environments the caller may see, by name.",
                  {**ok("EnvironmentPage"), **errors(400, 403)}, "environments", parameters=[
                      query("q", STRING, "Words, each found in the name, display name, "
                                         "description, repository or owner."),
                      query("owner", STRING, "Only this user's."),
                      query("built", {"enum": ["true", "false"]}, "true: only launchable."),
                      *PAGE_QUERY]),
    },
    "/api/environments/{name}": {
        "parameters": [ENV_NAME],
        "get": op("One environment.", {**ok("Environment"), **errors(403, 404)},
                  "environments"),
        "patch": op("Change display fields, default profile, visibility, default add-on "
                    "services (the owner, if they may build, or an admin), or pin it "
                    "(admins). Nothing is rebuilt.",
                    {**ok("Environment"), **errors(400, 403, 404, 413)}, "environments",
                    requestBody=body("EnvironmentChange", required=False)),
        "delete": op("Delete the environment, its builds, logs, images and exports.",
                     {**no_content(204, "Deleted."), **errors(403, 404, 409)},
                     "environments", parameters=[
                         query("force", {"enum": ["true", "false"]},
                               "true: even while servers run from it.")]),
    },
    "/api/environments/{name}/exports": {
        "parameters": [ENV_NAME],
        "get": op("The environment's SIF exports.", {**ok("ExportList"), **errors(403, 404)},
                  "exports"),
        "post": op("Export the environment's image as a SIF (needs the build permission).",
                   {**ok("Export", "Made already."), **ok("Export", "Started.", 202),
                    **errors(400, 403, 404, 409, 413)}, "exports",
                   requestBody=body("ExportRequest", required=False)),
    },
    "/api/exports/{export_id}": {
        "parameters": [EXPORT_ID],
        "get": op("One export: its progress, and commands once done.",
                  {**ok("Export"), **errors(403, 404)}, "exports"),
    },
    "/api/exports/{export_id}/download": {
        "parameters": [EXPORT_ID],
        "get": op("The SIF file.", {
            **ok({"type": "string", "format": "binary"}, "The SIF (an attachment).",
                 media="application/octet-stream"),
            **errors(403, 404, 409)}, "exports"),
    },
    "/api/applications": {
        "get": op("The caller's servers started from environments or templates.",
                  {**ok("ApplicationList"), **errors(403, 502)}, "applications"),
        "post": op("Start a named server from an environment (the token must be allowed "
                   "to start the caller's servers).",
                   {**ok("Application", "It runs already."),
                    **ok("Application", "Started.", 201),
                    **errors(400, 403, 404, 409, 413, 429, 502)}, "applications",
                   requestBody=body("ApplicationRequest")),
    },
    "/api/servers/{server_name}": {
        "parameters": [SERVER_NAME],
        "get": op("One of the caller's servers started from an environment or a template "
                  "(was `applications/{server_name}`).",
                  {**ok("Application"), **errors(403, 404, 502)}, "applications"),
        "delete": op("Stop one of the caller's servers.",
                     {**no_content(202, "Stopping."), **errors(403, 404, 502)},
                     "applications"),
    },
    "/api/specs": {
        "get": op("Every spec (everyone may read them).",
                  {**ok("SpecList"), **errors(403, schema="SpecError")}, "specs"),
        "post": op("Create a spec (needs the build permission).",
                   {**ok("Spec", "Created.", 201, headers=LOCATION),
                    **errors(400, 403, 404, 409, 413, 422, schema="SpecError")}, "specs",
                   requestBody=body("SpecCreate")),
    },
    "/api/specs/validate": {
        "post": op("Check sections line by line.", {
            **ok("Validation"), **errors(400, 403, 404, 413, schema="SpecError")}, "specs",
            requestBody=body("SpecCheck", required=False)),
    },
    "/api/specs/preview": {
        "post": op("repo2docker's view of sections (over a saved spec, if named).", {
            **ok("Preview"), **errors(400, 403, 404, 413, schema="SpecError")}, "specs",
            requestBody=body("SpecPreviewRequest", required=False)),
    },
    "/api/specs/import": {
        "post": op("A new spec (or a new version of the caller's) from a zip, or a folder "
                   "sent as multipart parts `file` with `path` fields.", {
                       **ok({"oneOf": [ref("Spec"), ref("ImportCheck")]},
                            "A new version of an existing spec, or (dry_run) the check."),
                       **ok("Spec", "Created.", 201),
                       **errors(400, 403, 404, 409, 413, 415, schema="SpecError")},
                   "specs", parameters=[
                       query("name", STRING, "The spec's name; default from the files."),
                       query("display_name", STRING), query("description", STRING),
                       query("dry_run", {"enum": ["1", "true"]},
                             "Check and preview the files; save nothing (answers "
                             "`ImportCheck`).")],
                   requestBody={"required": True, "content": {
                       "application/zip": {"schema": {"type": "string",
                                                      "format": "binary"}},
                       "multipart/form-data": {"schema": obj({
                           "file": {"type": "array", "items": {"type": "string",
                                                               "format": "binary"}},
                           "path": {"type": "array", "items": STRING}})}}}),
    },
    "/api/specs/{name}": {
        "parameters": [SPEC_NAME],
        "get": op("One spec, at its newest or a given version.",
                  {**ok("Spec"), **errors(400, 403, 404, 405, schema="SpecError")}, "specs",
                  parameters=[SPEC_VERSION]),
        "put": op("Save a new version, or change display fields (its owner or an admin).",
                  {**ok("Spec"), **errors(400, 403, 404, 405, 409, 413, 422,
                                          schema="SpecError")},
                  "specs", requestBody=body("SpecSave", required=False)),
        "delete": op("Delete a spec (its owner or an admin).",
                     {**no_content(204, "Deleted."),
                      **errors(400, 403, 404, 405, schema="SpecError")}, "specs"),
    },
    "/api/specs/{name}/versions": {
        "parameters": [SPEC_NAME],
        "get": op("Its versions, newest first.",
                  {**ok("SpecVersions"), **errors(400, 403, 404, schema="SpecError")},
                  "specs"),
    },
    "/api/specs/{name}/zip": {
        "parameters": [SPEC_NAME],
        "get": op("A version's files as a zip that repo2docker builds as is.", {
            **ok({"type": "string", "format": "binary"}, "The zip (an attachment).",
                 media="application/zip"),
            **errors(400, 403, 404, schema="SpecError")}, "specs",
            parameters=[SPEC_VERSION]),
    },
    "/api/specs/{name}/preview": {
        "parameters": [SPEC_NAME],
        "get": op("repo2docker's view of a saved version.",
                  {**ok("Preview"), **errors(400, 403, 404, schema="SpecError")}, "specs",
                  parameters=[SPEC_VERSION]),
    },
    "/api/specs/{name}/builds": {
        "parameters": [SPEC_NAME],
        "post": op("Build a version into an environment (needs the build permission).", {
            **ok("Build", "Already built (cache)."), **ok("Build", "Queued.", 202),
            **errors(400, 403, 404, 409, 413, 422, schema="SpecError")}, "specs",
            requestBody=body("SpecBuild", required=False)),
    },
    "/api/gallery": {
        "get": op("Built environments the caller may use, a page at a time.",
                  {**ok("GalleryPage"), **errors(400, 403)}, "gallery",
                  parameters=[*GALLERY_FILTERS, *PAGE_QUERY]),
    },
    "/api/gallery/{name}": {
        "parameters": [GALLERY_NAME],
        "get": op("One environment in the gallery, with its README as HTML.", {
            **ok({"allOf": [ref("GalleryEntry"), obj({"readme_html": STRING},
                                                     required=("readme_html",))]}),
            **errors(403, 404)}, "gallery"),
    },
    "/api/gallery/{name}/notebooks/{path}": {
        "parameters": [GALLERY_NAME, NOTEBOOK_PATH],
        "get": op("Whether a notebook can be shown, with its URLs.", {
            **ok("GalleryNotebook"), **errors(403, 404, 422)}, "gallery"),
    },
}

# -- Binder links (BinderHub's shapes; see handlers/binder.py) ------------------------------

PROVIDER = path_param("provider", "[^/]+", "A Binder provider's id (see api/repoproviders).")
LINK_SPEC = path_param("spec", ".+", "The link's spec, as BinderHub's: e.g. `org/repo/ref` "
                                     "for `gh`, a URL-escaped URL and a ref for `git`.")
SCHEMAS["BinderEvent"] = obj({
    "phase": {"enum": ["waiting", "fetching", "building", "built", "launching", "ready",
                       "failed", "unknown"]},
    "message": STRING, "imageName": STRING, "status_code": INT, "image": STRING,
    "url": STRING, "token": STRING, "repo_url": STRING, "binder_ref_url": STRING,
    "binder_launch_host": STRING, "binder_request": STRING,
    "binder_persistent_request": STRING, "binder_client_ip": STRING,
}, required=("phase",))
SCHEMAS["BinderStreamEvent"] = obj({
    "data": {"type": "string", "contentMediaType": JSON, "contentSchema": ref("BinderEvent")},
}, required=("data",), description="One server-sent event (BinderHub's have no `event` or "
                                   "`id` field).")
SCHEMAS["RepoProvider"] = obj({
    "displayName": STRING, "id": STRING,
    "spec": obj({"validateRegex": STRING}),
    "repo": obj({"label": STRING, "placeholder": STRING, "urlEncode": BOOL}),
    "ref": obj({"enabled": BOOL, "default": STRING}),
}, required=("displayName", "id", "spec", "repo", "ref"))
PREFLIGHT = op("CORS preflight, for pages of `rees.binder.cors_allow_origin`.",
               {"204": {"description": "The allowed headers and methods."}}, "binder",
               security=[])
BINDER = {
    "/build/{provider}/{spec}": {
        "parameters": [PROVIDER, LINK_SPEC],
        "get": op("BinderHub's event stream: build (or find) the link's version, launch a "
                  "server for the caller, end with `ready` (url, token, …) or `failed`. "
                  "Every problem, a missing login or `Accept: text/event-stream` included, "
                  "is a `failed` event with its `status_code`, on an HTTP 200.",
                  ok("BinderStreamEvent", "An event stream; the schema is each event's.",
                     media="text/event-stream"), "binder",
                  parameters=[query("build_only", {"enum": ["true", "false"]},
                                    "`true`: build, then `ready` with `imageName`; no "
                                    "launch.")]),
        "options": PREFLIGHT,
    },
    "/v2/{provider}/{spec}": {
        "parameters": [PROVIDER, LINK_SPEC],
        "get": page("A Binder link's page: the build's log, then the server.", 400, 403,
                    404, tag="binder", parameters=[
                        query("urlpath", STRING), query("labpath", STRING),
                        query("filepath", STRING)]),
    },
    "/api/repoproviders": {
        "get": op("The Binder providers this Hub answers, as BinderHub lists them.",
                  ok({"type": "array", "items": ref("RepoProvider")}), "binder",
                  security=[]),
        "options": PREFLIGHT,
    },
    "/badge_logo.svg": {"get": op("The \"launch | binder\" badge.", {
        "200": {"description": "An SVG image.", "content": {"image/svg+xml": {}}}},
        "binder", security=[])},
}

OPERATIONS = {
    "/metrics": {"get": op(
        "The service's metrics in Prometheus' text format (builds, launches, queue, "
        "servers, pools, image disk use, the process); needs `custom:rees:metrics` (rees "
        "admins and Hub admins have it).",
        {**ok({"type": "string"}, "Prometheus text exposition format 0.0.4.",
              media="text/plain"), **errors(403)}, "service")},
}

TEMPLATE_NAME = path_param("name", "[a-z0-9][a-z0-9._-]*", "A template's name.")
APP_ID = path_param("app_id", "[a-z0-9][a-z0-9-]*",
                    "An application's id: the caller's server name, or a temporary user's "
                    "name (anonymous launches).")
SECONDS = {"type": "integer", "minimum": 0, "maximum": 30 * 24 * 3600}
LIMITS = obj({"memory": nullable({"type": ["string", "integer"],
                                  "description": "A size like 512M or 2G."}),
              "cpu": nullable({"type": "number", "minimum": 0.01})})
SERVICE = obj({"name": STRING, "version": STRING, "params": {"type": "object"}},
              required=("name",))
TEMPLATE_FIELDS = {
    "image-name": {"type": "string", "minLength": 1, "description": "A built environment "
                   "(or a plain image in `rees.templates.allowed_images`)."},
    "limits": LIMITS, "cull-timeout": SECONDS, "max-age": SECONDS,
    "max-servers": {"type": "integer", "minimum": 0, "maximum": 10000},
    "services": {"type": "array", "items": SERVICE, "maxItems": 20},
    "anonymous": BOOL,
    "allowed-users": {"type": "array", "items": STRING,
                      "description": "Who may launch it logged in; empty: every user."},
}
SCHEMAS.update({
    "TemplateCreate": obj({
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,62}$",
                 "description": "Default: the image-name."},
        **TEMPLATE_FIELDS,
        "command": {"type": "null", "description": "Not supported (servers run "
                                                   "jupyterhub-singleuser)."},
    }, required=("image-name",), closed=True),
    "TemplateChange": obj(TEMPLATE_FIELDS, closed=True),
    "Template": obj({
        "name": STRING, **TEMPLATE_FIELDS, "image-name": STRING,
        "image-kind": {"enum": ["environment", "image"]}, "owner": STRING,
        "time-created": TIME, "time-modified": TIME,
        "status": {"enum": ["completed", "pending", "failed"]},
    }, required=("name", "image-name", "limits", "cull-timeout", "services", "anonymous",
                 "time-created", "time-modified")),
    "TemplateList": obj({"templates": {"type": "array", "items": ref("Template")}},
                        required=("templates",)),
    "TemplateStatus": obj({"status": {"enum": ["completed", "pending", "failed"]}},
                          required=("status",)),
    "Pool": obj({
        "template": STRING, "size": INT, "running": INT, "available": INT,
        "starting": INT, "claimed": INT, "claimed-last-hour": INT, "error": STRING,
    }, required=("template", "size", "running", "available")),
    "PoolList": obj({"pools": {"type": "array", "items": ref("Pool")}}, required=("pools",)),
    "PoolSize": obj({"size": {"type": "integer", "minimum": 0, "maximum": 1000}},
                    required=("size",), closed=True),
    "NoFields": obj({}, closed=True, description="No fields."),
})
ONDEMAND_PREFLIGHT = op("CORS preflight, for pages of `rees.binder.cors_allow_origin`.",
                        {"204": {"description": "The allowed headers and methods."},
                         **errors(404)}, "applications", security=[])
USER_QUERY = query("user", STRING, "Admins: whose application (default: the caller's).")
PAGES["/try/{name}"] = {
    "parameters": [TEMPLATE_NAME],
    "get": op("A \"try it\" link: a page whose script launches the anonymous template "
              "and opens the server with its token (anonymous launches must be on).", {
                  "200": {"description": "The page.", "content": {HTML: {}}},
                  **{str(c): PAGE_ERRORS[str(c)] for c in (400, 403, 404)}}, "pages",
              security=[], parameters=[query("urlpath", STRING), query("labpath", STRING),
                                       query("filepath", STRING)]),
}
API.update({
    "/api/templates": {
        "get": op("The templates the caller may launch or manage.",
                  {**ok("TemplateList"), **errors(403)}, "templates"),
        "post": op("Register a template (needs the build permission).",
                   {**ok("Template", "Registered.", 201), **errors(400, 403, 409, 413)},
                   "templates", requestBody=body("TemplateCreate")),
    },
    "/api/templates/{name}": {
        "parameters": [TEMPLATE_NAME],
        "get": op("One template.", {**ok("Template"), **errors(403, 404)}, "templates"),
        "patch": op("Change a template (its owner or an admin).",
                    {**ok("Template"), **errors(400, 403, 404, 413)}, "templates",
                    requestBody=body("TemplateChange")),
        "delete": op("Delete a template, its pool and its anonymous servers.",
                     {**no_content(204, "Deleted."), **errors(403, 404, 502)}, "templates"),
    },
    "/api/templates/{name}/status": {
        "parameters": [TEMPLATE_NAME],
        "get": op("Whether its image is there to launch.",
                  {**ok("TemplateStatus"), **errors(403, 404)}, "templates"),
    },
    "/api/applications/{name}": {
        "parameters": [TEMPLATE_NAME],
        "post": op("Launch the template: a named server of the caller's (with their "
                   "storage), or, without a token, an anonymous server (when the admin "
                   "allows it and the template is anonymous) with a `token`.",
                   {**ok("Application", "It runs already."),
                    **ok("Application", "Launched.", 201),
                    **errors(400, 403, 404, 409, 413, 429, 502)}, "applications",
                   requestBody=body("NoFields", required=False),
                   security=[{"token": []}, {}]),
        "get": op("The caller's applications of the template (every one, for admins).",
                  {**ok("ApplicationList"), **errors(403, 404, 502)}, "applications"),
        "options": ONDEMAND_PREFLIGHT,
    },
    "/api/applications/{name}/{app_id}": {
        "parameters": [TEMPLATE_NAME, APP_ID],
        "get": op("One application (an anonymous one with its own token).",
                  {**ok("Application"), **errors(403, 404, 502)}, "applications",
                  parameters=[USER_QUERY]),
        "delete": op("Stop it (an anonymous one's temporary user goes too).",
                     {**no_content(202, "Stopping."), **errors(403, 404, 502)},
                     "applications", parameters=[USER_QUERY]),
        "options": ONDEMAND_PREFLIGHT,
    },
    "/api/pools": {
        "get": op("Every pool (admins).", {**ok("PoolList"), **errors(403)}, "pools"),
    },
    "/api/pools/{name}": {
        "parameters": [TEMPLATE_NAME],
        "get": op("A template's pool (admins).", {**ok("Pool"), **errors(403, 404)},
                  "pools"),
        "post": op("Create the pool or change its size (admins); refused beyond the "
                   "machine's CPUs and memory.",
                   {**ok("Pool"), **errors(400, 403, 404, 409, 413)}, "pools",
                   requestBody=body("PoolSize")),
        "delete": op("Delete the pool and stop its unclaimed servers (admins).",
                     {**no_content(204, "Deleted."), **errors(403, 404, 502)}, "pools"),
    },
})

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {
        "title": "tljh-rees",
        "version": __version__,
        "description": "Build repositories into environments, launch and export them. "
                       "Errors of the JSON API are `{\"error\", \"status\", \"field\"?}`. "
                       "Pages (tag `pages`) are HTML for people.",
    },
    "servers": [{"url": "/services/rees"}],
    "security": [{"token": []}],
    "tags": [{"name": n} for n in ("builds", "environments", "exports", "templates",
                                   "applications", "pools", "specs", "gallery", "binder", "service", "pages")],
    "paths": {**API, **PAGES, **BINDER, **OPERATIONS},
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"token": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "`token <JupyterHub API token>`; the token needs "
                           "`access:services!service=rees`. Building needs "
                           "`custom:rees:build`; launching needs `servers!user=<name>`; "
                           "reading metrics needs `custom:rees:metrics`. "
                           "Browsers use the Hub's login (OAuth) instead.",
        }},
    },
}


def document(service_prefix: str) -> dict:
    """The document, its server being the service's prefix (relative to this host)."""
    doc = copy.deepcopy(DOCUMENT)
    doc["servers"] = [{"url": service_prefix.rstrip("/") or "/"}]
    return doc


class OpenAPIHandler(APIHandler):
    def get(self):
        self.finish(json.dumps(document(self.urls.service_prefix)))


class UnknownAPIPath(APIHandler):
    """An ``api/`` path no route has (e.g. an environment name with capitals): a JSON
    404 like every API error, not tornado's HTML page."""

    def prepare(self):
        raise web.HTTPError(404, "No such API path; %sapi/openapi.json lists them.",
                            self.urls.service_prefix)


def routes() -> list:
    return [("api/openapi.json", OpenAPIHandler),
            ("api/.*", UnknownAPIPath)]  # last of all routes (app.ROUTE_MODULES)
