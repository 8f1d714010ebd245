"""The OpenAPI document matches the route table: every route and every method a handler
implements is documented, nothing documented is missing, and the document is valid."""

from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate
from tornado import web

from tljh_rees.app import ReesService
from tljh_rees.handlers.openapi import document

PREFIX = "/services/rees/"
# JupyterHub's own OAuth callback (part of the Hub's login, not of the service's API),
# and the JSON 404 for api/ paths no route has.
UNDOCUMENTED = {"oauth_callback", "api/.*"}
METHODS = ("get", "post", "put", "patch", "delete", "options")


def implemented(handler) -> set[str]:
    """The methods a handler class answers (not tornado's default 405)."""
    return {m for m in METHODS
            if getattr(handler, m) is not getattr(web.RequestHandler, m)}


def route_table() -> dict[str, set[str]]:
    """Each route's regex (under the prefix) → its handler's methods."""
    routes = {}
    for pattern, handler in ReesService(service_prefix=PREFIX).handlers():
        assert pattern.startswith(PREFIX) or pattern == PREFIX.rstrip("/"), pattern
        path = pattern[len(PREFIX):]
        if path not in UNDOCUMENTED:
            routes[path] = implemented(handler)
    return routes


def documented() -> dict[str, set[str]]:
    """Each documented path as the route regex it describes → its methods: ``{p}``
    becomes the parameter's own pattern as a group."""
    doc = document(PREFIX)
    paths = {}
    for template, item in doc["paths"].items():
        params = {p["name"]: p for p in item.get("parameters", []) if p["in"] == "path"}
        for method in METHODS:
            for p in item.get(method, {}).get("parameters", []):
                if p["in"] == "path":
                    params[p["name"]] = p

        def group(match, params=params):
            pattern = params[match.group(1)]["schema"]["pattern"]
            assert pattern.startswith("^") and pattern.endswith("$"), pattern
            return f"({pattern[1:-1]})"

        regex = re.sub(r"\{([^}]+)\}", group, template.lstrip("/"))
        paths[regex] = {m for m in METHODS if m in item}
    return paths


@pytest.mark.unit
def test_the_document_is_valid_openapi():
    validate(document(PREFIX))


@pytest.mark.unit
def test_every_route_and_method_is_documented():
    routes, docs = route_table(), documented()
    missing = {r: sorted(m - docs.get(r, set())) for r, m in routes.items()
               if m - docs.get(r, set())}
    assert not missing, f"routes (or methods) missing from handlers/openapi.py: {missing}"


@pytest.mark.unit
def test_nothing_documented_is_missing_from_the_routes():
    routes, docs = route_table(), documented()
    extra = {p: sorted(m - routes.get(p, set())) for p, m in docs.items()
             if m - routes.get(p, set())}
    assert not extra, f"documented but not routed: {extra}"


@pytest.mark.unit
def test_every_api_route_is_documented_as_json_or_names_its_content_type():
    doc = document(PREFIX)
    media = {"application/json", "text/event-stream", "text/plain",
             "application/octet-stream", "application/zip"}
    for path, item in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in METHODS:
            if method not in item:
                continue
            for status, response in item[method]["responses"].items():
                found = set(response.get("content", {}))
                assert found <= media, (path, method, status, found)
                if status.startswith("4"):
                    assert found == {"application/json"}, (path, method, status)


@pytest.mark.unit
def test_request_bodies_take_exactly_the_fields_the_handlers_accept():
    from tljh_rees.catalog.catalog import EDITABLE
    from tljh_rees.handlers import builds, specs

    schemas = document(PREFIX)["components"]["schemas"]
    expected = {"BuildRequest": builds.BUILD_FIELDS, "EnvironmentChange": set(EDITABLE),
                "ApplicationRequest": {"environment", "server_name", "profile", "cluster"},
                "ExportRequest": set(), "SpecCreate": specs.CREATE_FIELDS,
                "SpecSave": specs.SAVE_FIELDS, "SpecBuild": specs.BUILD_FIELDS,
                "SpecCheck": {"sections", "spec"},
                "SpecPreviewRequest": {"sections", "spec", "version"}}
    for name, fields in expected.items():
        assert set(schemas[name]["properties"]) == set(fields), name
        assert schemas[name]["additionalProperties"] is False, name


@pytest.mark.parametrize("token", [None, "admin"])
def test_the_document_is_served_to_anyone(hub, token):
    headers = {} if token is None else {"Authorization": f"token {hub.token}"}
    import requests

    r = requests.get(f"{hub.service_url}/api/openapi.json", headers=headers, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    served = r.json()
    assert served["servers"] == [{"url": "/services/rees"}]
    assert served["paths"] == document(PREFIX)["paths"]
