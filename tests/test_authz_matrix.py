"""Who may do what, route by route: every route of the route table × seven identities,
against a real Hub, with real environments, builds, exports, specs and gallery pages.

The objects: ``priv``, a private environment of the Hub admin, and ``pub``, a public one
of the user ``builder`` (the test Hub's only builder), each built through the API from a
~2 MB image (so exporting them takes seconds) with a README and a notebook; their builds,
their finished SIF exports, and a spec of the Hub admin.

Requests that would start servers or builds are sent with one wrong field that is only
checked after the permission: an allowed identity gets that field's 400, a refused one
its 403/404. Rebuilds answer from the cache. Deletions go to a fresh copy of the object
(same owner, same visibility) made for each identity.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
import requests

from tests.helpers import GitRepo, notebook_json, wait_build
from tests.test_openapi import implemented
from tljh_rees.app import ReesService

PREFIX = "/services/rees/"
IDENTITIES = ("anonymous", "user", "other", "builder", "reesadmin", "hubadmin", "narrow")
# anonymous: no token. user, other: two plain Hub users. builder: in rees.builders, owns
# `pub`. reesadmin: in rees.admins, not a Hub admin. hubadmin: the Hub admin, owns `priv`
# and the spec. narrow: a token of the Hub admin with only access:services!service=rees:
# it reads what its owner owns, but carries neither the owner's admin rights nor the
# build permission, and may not start servers.

# Expected statuses, in the order of IDENTITIES:      anon user othr bldr radm hadm narrow
EVERYONE = "200 200 200 200 200 200 200"
SIGNED_IN = "403 200 200 200 200 200 200"               # any token of a Hub user
PAGE = "302 200 200 200 200 200 200"                    # anonymous browsers: to the login
PRIVATE = "403 404 404 404 200 200 200"                 # priv: admins and its owner see it
PRIVATE_PAGE = "302 404 404 404 200 200 200"
CHANGE_PRIVATE = "403 404 404 404 {ok} {ok} 403"        # admins (narrow: no build right)
BUILD_PERMISSION = "403 403 403 {ok} {ok} {ok} 403"     # builders and admins
CHANGE_PUBLIC = "403 403 403 {ok} {ok} {ok} 403"        # pub: its owner (builder), admins
CHANGE_ADMINS_SPEC = "403 403 403 403 {ok} {ok} 403"    # the spec is the Hub admin's
LAUNCH_PRIVATE = "403 404 404 404 {ok} {ok} 403"        # narrow may not start servers
LAUNCH_PUBLIC = "403 {ok} {ok} {ok} {ok} {ok} 403"

NOTEBOOK = "hello.ipynb"
BAD_SERVER = {"server_name": "Not A Server Name!"}  # checked after the permission

MATRIX = [
    # (method, path under the prefix, expected, request keywords)
    ("GET", "api/health", EVERYONE, {}),
    ("GET", "api/openapi.json", EVERYONE, {}),
    ("GET", "api/versions", SIGNED_IN, {}),
    ("GET", "api/user", SIGNED_IN, {}),
    ("GET", "api/no/such/path", "404 404 404 404 404 404 404", {}),
    # builds
    ("GET", "api/builds", SIGNED_IN, {}),
    ("POST", "api/builds", BUILD_PERMISSION.format(ok=400), {"json": {"repo": "-x"}}),
    ("POST", "api/builds", "403 403 403 403 200 200 403",   # rebuild priv: from the cache
     {"json": {"repo": "{priv_repo}", "name": "{priv}"}}),
    ("POST", "api/builds", CHANGE_PUBLIC.format(ok=200),
     {"json": {"repo": "{pub_repo}", "name": "{pub}"}}),
    ("GET", "api/builds/{priv_build}", PRIVATE, {}),
    ("GET", "api/builds/{pub_build}", SIGNED_IN, {}),
    ("DELETE", "api/builds/{priv_build}", CHANGE_PRIVATE.format(ok=409), {}),
    ("DELETE", "api/builds/{pub_build}", CHANGE_PUBLIC.format(ok=409), {}),
    ("GET", "api/builds/{priv_build}/events", PRIVATE, {}),
    ("GET", "api/builds/{pub_build}/events", SIGNED_IN, {}),
    ("GET", "api/builds/{priv_build}/log", PRIVATE, {}),
    ("GET", "api/builds/{pub_build}/log", SIGNED_IN, {}),
    # environments
    ("GET", "api/environments", SIGNED_IN, {}),
    ("GET", "api/environments/{priv}", PRIVATE, {}),
    ("GET", "api/environments/{pub}", SIGNED_IN, {}),
    ("PATCH", "api/environments/{priv}", CHANGE_PRIVATE.format(ok=200), {"json": {}}),
    ("PATCH", "api/environments/{pub}", CHANGE_PUBLIC.format(ok=200), {"json": {}}),
    ("DELETE", "api/environments/{copy_of_priv}", CHANGE_PRIVATE.format(ok=204), {}),
    ("DELETE", "api/environments/{copy_of_pub}", CHANGE_PUBLIC.format(ok=204), {}),
    # exports (both are made already: an allowed POST answers from the cache)
    ("GET", "api/environments/{priv}/exports", PRIVATE, {}),
    ("GET", "api/environments/{pub}/exports", SIGNED_IN, {}),
    ("POST", "api/environments/{priv}/exports", CHANGE_PRIVATE.format(ok=200),
     {"json": {}}),
    ("POST", "api/environments/{pub}/exports", CHANGE_PUBLIC.format(ok=200),
     {"json": {}}),
    ("GET", "api/exports/{priv_export}", PRIVATE, {}),
    ("GET", "api/exports/{pub_export}", SIGNED_IN, {}),
    ("GET", "api/exports/{priv_export}/download", PRIVATE, {}),
    ("GET", "api/exports/{pub_export}/download", SIGNED_IN, {}),
    # applications: nobody here has a server; starting one is refused by its name
    ("GET", "api/applications", SIGNED_IN, {}),
    ("POST", "api/applications", LAUNCH_PRIVATE.format(ok=400),
     {"json": {"environment": "{priv}", **BAD_SERVER}}),
    ("POST", "api/applications", LAUNCH_PUBLIC.format(ok=400),
     {"json": {"environment": "{pub}", **BAD_SERVER}}),
    ("GET", "api/servers/{priv}", "403 404 404 404 404 404 404", {}),
    ("DELETE", "api/servers/{priv}", "403 404 404 404 404 404 403", {}),
    # templates: tpriv (the Hub admin's, only they may launch it), tpub (builder's, anyone);
    # the orphans' environment is deleted, so a permitted launch is refused with a 409
    ("GET", "api/templates", SIGNED_IN, {}),
    ("POST", "api/templates", BUILD_PERMISSION.format(ok=400), {"json": {"image-name": ""}}),
    ("GET", "api/templates/{tpriv}", PRIVATE, {}),
    ("GET", "api/templates/{tpub}", SIGNED_IN, {}),
    ("PATCH", "api/templates/{tpriv}", CHANGE_PRIVATE.format(ok=200), {"json": {}}),
    ("PATCH", "api/templates/{tpub}", CHANGE_PUBLIC.format(ok=200), {"json": {}}),
    ("DELETE", "api/templates/{copy_of_tpub}", CHANGE_PUBLIC.format(ok=204), {}),
    ("GET", "api/templates/{tpriv}/status", PRIVATE, {}),
    ("GET", "api/templates/{tpub}/status", SIGNED_IN, {}),
    # applications of templates (anonymous launches are off on this Hub)
    ("POST", "api/applications/{orphan_priv}", LAUNCH_PRIVATE.format(ok=409), {}),
    ("POST", "api/applications/{orphan_pub}", LAUNCH_PUBLIC.format(ok=409), {}),
    ("GET", "api/applications/{tpriv}", PRIVATE, {}),
    ("GET", "api/applications/{tpub}", SIGNED_IN, {}),
    ("OPTIONS", "api/applications/{tpub}", "204 204 204 204 204 204 204", {}),
    ("GET", "api/applications/{tpub}/nothing-here", "403 404 404 404 404 404 404", {}),
    ("DELETE", "api/applications/{tpub}/nothing-here", "403 404 404 404 404 404 404", {}),
    ("OPTIONS", "api/applications/{tpub}/nothing-here", "204 204 204 204 204 204 204", {}),
    ("GET", "try/{tpub}", "403 403 403 403 403 403 403", {}),  # anonymous launches: off
    # pools: admins only
    ("GET", "api/pools", "403 403 403 403 200 200 403", {}),
    ("GET", "api/pools/{tpub}", "403 403 403 403 404 404 403", {}),
    ("POST", "api/pools/{tpub}", "403 403 403 403 409 409 403", {"json": {"size": 1}}),
    ("DELETE", "api/pools/{tpub}", "403 403 403 403 404 404 403", {}),
    # specs: everyone reads; building, composing need the permission; changing, the owner
    ("GET", "api/specs", SIGNED_IN, {}),
    ("POST", "api/specs", BUILD_PERMISSION.format(ok=201), {"json": {"name": "{new_spec}"}}),
    ("POST", "api/specs/validate", BUILD_PERMISSION.format(ok=200), {"json": {}}),
    ("POST", "api/specs/preview", BUILD_PERMISSION.format(ok=400),
     {"json": {"sections": "not an object"}}),
    ("POST", "api/specs/import", BUILD_PERMISSION.format(ok=415), {}),
    ("GET", "api/specs/{spec}", SIGNED_IN, {}),
    ("PUT", "api/specs/{spec}", CHANGE_ADMINS_SPEC.format(ok=200), {"json": {}}),
    ("DELETE", "api/specs/{copy_of_spec}", CHANGE_ADMINS_SPEC.format(ok=204), {}),
    ("GET", "api/specs/{spec}/versions", SIGNED_IN, {}),
    ("GET", "api/specs/{spec}/zip", SIGNED_IN, {}),
    ("GET", "api/specs/{spec}/preview?version=nothex", "403 400 400 400 400 400 400", {}),
    ("POST", "api/specs/{spec}/builds", BUILD_PERMISSION.format(ok=400),
     {"json": {"version": "nothex"}}),
    # gallery
    ("GET", "api/gallery", SIGNED_IN, {}),
    ("GET", "api/gallery/{priv}", PRIVATE, {}),
    ("GET", "api/gallery/{pub}", SIGNED_IN, {}),
    ("GET", "api/gallery/{priv}/notebooks/" + NOTEBOOK, PRIVATE, {}),
    ("GET", "api/gallery/{pub}/notebooks/" + NOTEBOOK, SIGNED_IN, {}),
    # pages
    ("GET", "", PAGE, {}),
    ("GET", "environments", "302 302 302 302 302 302 302", {}),
    ("GET", "servers", PAGE, {}),
    ("GET", "templates", PAGE, {}),
    ("GET", "dashboard", "302 403 403 403 200 200 403", {}),  # admins; narrow: no admin
    ("GET", "launch/{priv}", PRIVATE_PAGE, {}),
    ("GET", "launch/{pub}", PAGE, {}),
    ("POST", "launch/{priv}", LAUNCH_PRIVATE.format(ok=400),
     {"data": {"profile": "no-such-profile"}}),
    ("POST", "launch/{pub}", LAUNCH_PUBLIC.format(ok=400),
     {"data": {"profile": "no-such-profile"}}),
    ("GET", "environments/{priv}/export", PRIVATE_PAGE, {}),
    ("GET", "environments/{pub}/export", PAGE, {}),
    ("GET", "composer", PAGE, {}),
    ("GET", "composer/{spec}", PAGE, {}),
    ("GET", "gallery", PAGE, {}),
    ("GET", "gallery/{priv}", PRIVATE_PAGE, {}),
    ("GET", "gallery/{pub}", PAGE, {}),
    ("GET", "gallery/{priv}/notebooks/" + NOTEBOOK, PRIVATE_PAGE, {}),
    ("GET", "gallery/{pub}/notebooks/" + NOTEBOOK, PAGE, {}),
    ("GET", "gallery/{priv}/render/" + NOTEBOOK, PRIVATE_PAGE, {}),
    ("GET", "gallery/{pub}/render/" + NOTEBOOK, PAGE, {}),
    # operations: custom:rees:metrics (rees admins, Hub admins)
    ("GET", "metrics", "403 403 403 403 200 200 403", {}),
    # Binder links: the stream answers every problem (a missing login too) as a failed
    # event on a 200, as BinderHub's clients expect; tests/test_binder.py reads the events
    ("GET", "v2/gh/someone/something/HEAD", PAGE, {}),
    ("GET", "build/gh/only-two/parts", EVERYONE,
     {"headers": {"Accept": "text/event-stream"}}),
    ("OPTIONS", "build/gh/only-two/parts", "204 204 204 204 204 204 204", {}),
    ("GET", "api/repoproviders", EVERYONE, {}),
    ("OPTIONS", "api/repoproviders", "204 204 204 204 204 204 204", {}),
    ("GET", "badge_logo.svg", EVERYONE, {}),
]
# JupyterHub's own OAuth callback (its login machinery, not the service's).
NOT_IN_MATRIX = {"oauth_callback"}
SAMPLE = {"priv": "p", "pub": "q", "priv_build": "ab", "pub_build": "cd", "spec": "s",
          "copy_of_priv": "p2", "copy_of_pub": "q2", "copy_of_spec": "s2", "new_spec": "n",
          "priv_export": "e" * 64, "pub_export": "f" * 64, "priv_repo": "", "pub_repo": "",
          "tpriv": "t1", "tpub": "t2", "copy_of_tpub": "t3", "orphan_priv": "t4",
          "orphan_pub": "t5"}


def expected(row) -> dict[str, int]:
    codes = [int(c) for c in row[2].split()]
    assert len(codes) == len(IDENTITIES), row
    return dict(zip(IDENTITIES, codes))


def route_of(routes, path: str):
    """The route tornado picks for ``path`` (the first whose regex matches it all)."""
    path = path.split("?", 1)[0]
    return next((pattern for pattern, regex, _ in routes if regex.fullmatch(path)), None)


def route_table():
    routes = []
    for pattern, handler in ReesService(service_prefix=PREFIX).handlers():
        path = pattern[len(PREFIX):]
        if path in NOT_IN_MATRIX:
            continue
        routes.append((path, re.compile(path), {m.upper() for m in implemented(handler)}))
    return routes


@pytest.mark.unit
def test_every_route_and_method_has_a_row():
    routes = route_table()
    covered = {(route_of(routes, row[1].format(**SAMPLE)), row[0]) for row in MATRIX}
    missing = [f"{method} {path or '/'}" for path, _, methods in routes
               for method in sorted(methods) if (path, method) not in covered]
    assert not missing, f"routes with no row in MATRIX: {', '.join(missing)}"
    for row in MATRIX:
        expected(row)
        assert route_of(routes, row[1].format(**SAMPLE)) is not None, row


# -- the objects --------------------------------------------------------------------------

def built(hub, token, repo: GitRepo, name: str, public: bool) -> dict:
    r = hub.rees("POST", "builds", token=token,
                 json={"repo": repo.url, "name": name, "public": public})
    assert r.status_code in (200, 202), r.text
    build = wait_build(hub, r.json()["id"], token=token)
    assert build["status"] == "built", build
    return build


def registered(hub, token, name: str, environment: str, allowed=()) -> None:
    r = hub.rees("POST", "templates", token=token,
                 json={"name": name, "image-name": environment, "allowed-users": list(allowed)})
    assert r.status_code == 201, r.text


def exported(hub, token, name: str) -> str:
    r = hub.rees("POST", f"environments/{name}/exports", token=token, json={})
    assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + 240
    while (job := hub.rees("GET", f"exports/{r.json()['id']}", token=token).json())[
            "status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "done", job
    return job["id"]


def repository(path, tiny_image: str, marker: str) -> GitRepo:
    repo = GitRepo(str(path))
    repo.commit({"Dockerfile": f"FROM {tiny_image}\nWORKDIR /repo\nCOPY . /repo/\n",
                 "README.md": f"# {marker}\n", "marker.txt": marker + "\n",
                 NOTEBOOK: notebook_json(marker)})
    return repo


@pytest.fixture(scope="module")
def world(hub, tiny_image, tmp_path_factory):
    run = uuid.uuid4().hex[:6]
    tokens = {"anonymous": None, "user": hub.user_token(f"authz-user-{run}"),
              "other": hub.user_token(f"authz-other-{run}"),
              "builder": hub.user_token("builder"), "reesadmin": hub.user_token("reesadmin"),
              "hubadmin": hub.token}
    r = hub.request("POST", "/hub/api/users/admin/tokens",
                    json={"scopes": ["access:services!service=rees"], "note": "narrow"})
    assert r.status_code == 201, r.text
    tokens["narrow"] = r.json()["token"]
    root = tmp_path_factory.mktemp("authz")
    priv_repo = repository(root / "priv", tiny_image, f"private {run}")
    pub_repo = repository(root / "pub", tiny_image, f"public {run}")
    names = {"priv": f"authz-priv-{run}", "pub": f"authz-pub-{run}",
             "spec": f"authz-spec-{run}"}
    priv_build = built(hub, hub.token, priv_repo, names["priv"], public=False)
    pub_build = built(hub, tokens["builder"], pub_repo, names["pub"], public=True)
    r = hub.rees("POST", "specs", json={"name": names["spec"],
                                        "sections": {"requirements": "numpy\n"}})
    assert r.status_code == 201, r.text
    templates = {"tpriv": f"authz-tpriv-{run}", "tpub": f"authz-tpub-{run}",
                 "orphan_priv": f"authz-orphan-priv-{run}",
                 "orphan_pub": f"authz-orphan-pub-{run}"}
    registered(hub, hub.token, templates["tpriv"], names["priv"], ["admin"])
    registered(hub, tokens["builder"], templates["tpub"], names["pub"])
    orphaned = f"authz-orphaned-{run}"
    built(hub, hub.token, priv_repo, orphaned, public=True)
    registered(hub, hub.token, templates["orphan_priv"], orphaned, ["admin"])
    registered(hub, hub.token, templates["orphan_pub"], orphaned)
    assert hub.rees("DELETE", f"environments/{orphaned}").status_code == 204
    world = {
        "run": run, "tokens": tokens, "repos": {"priv": priv_repo, "pub": pub_repo},
        "values": {**names, **templates, "priv_build": priv_build["id"], "pub_build": pub_build["id"],
                   "priv_repo": priv_repo.url, "pub_repo": pub_repo.url,
                   "priv_export": exported(hub, hub.token, names["priv"]),
                   "pub_export": exported(hub, tokens["builder"], names["pub"])},
        "made": {"environments": [names["priv"], names["pub"]], "specs": [names["spec"]],
                 "templates": list(templates.values())},
    }
    yield world
    for name in world["made"]["templates"]:
        hub.rees("DELETE", f"templates/{name}")
    for name in world["made"]["environments"]:
        hub.rees("DELETE", f"environments/{name}?force=true")
    for name in world["made"]["specs"]:
        hub.rees("DELETE", f"specs/{name}")


def copies_for(hub, world, identity: str) -> dict:
    """Fresh objects for one identity's deletions: same owner and visibility as the
    originals, built from the same commits (so from the cache)."""
    run, tokens, repos = world["run"], world["tokens"], world["repos"]
    values = {"copy_of_priv": f"authz-del-priv-{identity}-{run}",
              "copy_of_pub": f"authz-del-pub-{identity}-{run}",
              "copy_of_spec": f"authz-del-spec-{identity}-{run}",
              "new_spec": f"authz-new-spec-{identity}-{run}",
              "copy_of_tpub": f"authz-del-tpub-{identity}-{run}"}
    built(hub, hub.token, repos["priv"], values["copy_of_priv"], public=False)
    built(hub, tokens["builder"], repos["pub"], values["copy_of_pub"], public=True)
    assert hub.rees("POST", "specs", json={"name": values["copy_of_spec"]}).status_code == 201
    registered(hub, tokens["builder"], values["copy_of_tpub"], world["values"]["pub"])
    world["made"]["templates"].append(values["copy_of_tpub"])
    world["made"]["environments"] += [values["copy_of_priv"], values["copy_of_pub"]]
    world["made"]["specs"] += [values["copy_of_spec"], values["new_spec"]]
    return values


def fill(value, values: dict):
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    return value


@pytest.mark.parametrize("identity", IDENTITIES)
def test_authorization_matrix(hub, world, identity):
    values = {**world["values"], **copies_for(hub, world, identity)}
    token = world["tokens"][identity]
    headers = {"Authorization": f"token {token}"} if token else {}
    wrong = []
    for row in MATRIX:
        method, path, _, kwargs = row
        want = expected(row)[identity]
        url = hub.service_url + "/" + path.format(**values)
        kwargs = fill(kwargs, values)
        r = requests.request(method, url, headers={**headers, **kwargs.pop("headers", {})},
                             allow_redirects=False, timeout=120, **kwargs)
        if r.status_code != want:
            wrong.append(f"{method} {path} → {r.status_code}, expected {want}: "
                         f"{r.text[:200]}")
        elif path.startswith("api/") and want >= 400:
            error = r.json()
            if error.get("status") != want or not error.get("error"):
                wrong.append(f"{method} {path}: not a JSON error: {r.text[:200]}")
    assert not wrong, f"{identity}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("identity", ["user", "other", "builder"])
def test_listings_never_show_a_private_environment(hub, world, identity):
    """Searches and lists answer as if someone else's private environment did not exist."""
    token = world["tokens"][identity]
    priv = world["values"]["priv"]
    pages = [("environments", {"q": priv}), ("environments", {"owner": "admin"}),
             ("environments", {"built": "true", "limit": 200}),
             ("builds", {"environment": priv}), ("builds", {}),
             ("gallery", {"q": priv}), ("gallery", {"repo": world["values"]["priv_repo"]})]
    for path, params in pages:
        r = hub.rees("GET", path, token=token, params=params)
        assert r.status_code == 200, r.text
        assert priv not in r.text, (path, params)
    for page in ("", "gallery", "servers", "composer"):
        r = hub.request("GET", f"/services/rees/{page}", token=token)
        assert r.status_code == 200 and priv not in r.text, page
