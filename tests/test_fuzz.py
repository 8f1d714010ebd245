"""Hostile input against the live service, from its own OpenAPI document (schemathesis):
no request may get a 5xx, and every answer must be one the document describes (status,
content type, JSON schema).

Two passes, each as the Hub admin and as a plain user:

- real objects: each GET operation (API and pages) with the ids of a built environment,
  its build, its finished export, a spec and a notebook, so the documented success
  schemas are checked against real answers;
- fuzzing: valid and invalid requests that schemathesis generates for every operation,
  within ``FUZZ_SECONDS`` for both identities (each operation and mode gets an equal
  slice of it, and at most ``MAX_EXAMPLES`` requests); the service must also log no
  traceback meanwhile (an error path that fails still answers 4xx).

Not fuzzed (see ``NOT_FUZZED``): requests that start servers (POST applications, the
launch page's POST), and builds as the admin (the plain user is refused before anything
starts, so theirs are fuzzed); as the admin, deletions of existing objects, because the
Hub is shared with the other tests, whose objects a generated name could hit. Changes
and exports as the admin are fuzzed on this module's own objects (``PINNED``).
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers import GitRepo, notebook_json, wait_build

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# Both identities together: at most about 2.5 minutes of requests (longer runs for a
# deeper look: REES_FUZZ_SECONDS=1200 REES_FUZZ_EXAMPLES=200).
FUZZ_SECONDS = float(os.environ.get("REES_FUZZ_SECONDS", "150"))
MAX_EXAMPLES = int(os.environ.get("REES_FUZZ_EXAMPLES", "25"))  # per operation and mode
REQUEST_TIMEOUT = 30
STARTS_SERVERS = {("POST", "/api/applications"), ("POST", "/launch/{environment}"),
                  ("POST", "/api/applications/{name}")}
STARTS_WORK = {("POST", "/api/builds"), ("POST", "/api/specs/{name}/builds")}
CHANGES_EXISTING = {("DELETE", "/api/environments/{name}"),
                    ("DELETE", "/api/builds/{build_id}"), ("DELETE", "/api/specs/{name}"),
                    ("DELETE", "/api/servers/{server_name}"),
                    ("DELETE", "/api/templates/{name}"), ("DELETE", "/api/pools/{name}"),
                    ("DELETE", "/api/applications/{name}/{app_id}")}
NOT_FUZZED = {"admin": STARTS_SERVERS | STARTS_WORK | CHANGES_EXISTING,
              "user": STARTS_SERVERS}
# As the admin, these are fuzzed on this module's own objects only (the export is made
# already, so its POST starts nothing).
PINNED = {"admin": {("PATCH", "/api/environments/{name}"): "environment",
                    ("PUT", "/api/specs/{name}"): "spec",
                    ("POST", "/api/environments/{name}/exports"): "environment"},
          "user": {}}
NOTEBOOK = "analysis.ipynb"


@pytest.fixture(scope="module")
def objects(hub, tiny_image, tmp_path_factory):
    """One built public environment (with a README, a notebook and packages), its build
    and finished export, and a spec: real ids for the operations' parameters."""
    run = uuid.uuid4().hex[:6]
    repo = GitRepo(str(tmp_path_factory.mktemp("fuzz") / "repo"))
    repo.commit({"Dockerfile": f"FROM {tiny_image}\nWORKDIR /repo\nCOPY . /repo/\n",
                 "README.md": "# Fuzz\n\nSee [the notebook](analysis.ipynb).\n",
                 "requirements.txt": "numpy\n", NOTEBOOK: notebook_json("fuzz")})
    name, spec = f"fuzz-{run}", f"fuzz-spec-{run}"
    r = hub.rees("POST", "builds", json={"repo": repo.url, "name": name})
    assert r.status_code in (200, 202), r.text
    build = wait_build(hub, r.json()["id"])
    assert build["status"] == "built", build
    r = hub.rees("POST", f"environments/{name}/exports", json={})
    assert r.status_code in (200, 202), r.text
    deadline = time.monotonic() + 240
    while (job := hub.rees("GET", f"exports/{r.json()['id']}").json())["status"] in (
            "queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["status"] == "done", job
    r = hub.rees("POST", "specs", json={"name": spec, "sections": {"requirements": "numpy\n"}})
    assert r.status_code == 201, r.text
    template = f"fuzz-template-{run}"
    r = hub.rees("POST", "templates", json={"name": template, "image-name": name})
    assert r.status_code == 201, r.text
    yield {"name": name, "environment": name, "build_id": build["id"],
           "export_id": job["id"], "spec": spec, "path": NOTEBOOK, "template": template,
           "server_name": "no-such-server", "app_id": "no-such-app", "provider": "gh"}
    hub.rees("DELETE", f"templates/{template}")
    hub.rees("DELETE", f"environments/{name}?force=true")
    hub.rees("DELETE", f"specs/{spec}")


def real_parameters(operation, objects) -> dict:
    """The operation's path parameters, naming the real objects (a Binder link's spec
    names a repository nobody published: its stream fails, as a stream does, on a 200)."""
    spec_path = operation.path.startswith(("/api/specs/", "/composer/"))
    link_path = operation.path.startswith(("/build/", "/v2/"))
    template_path = operation.path.startswith(("/api/templates/", "/api/applications/",
                                               "/api/pools/"))

    def value(name: str) -> str:
        if name == "name" and spec_path:
            return objects["spec"]
        if name == "name" and template_path:
            return objects["template"]
        if name == "spec" and link_path:
            return "nobody/nothing/HEAD"
        return objects[name]

    return {p.name: value(p.name) for p in operation.path_parameters}


def load_schema(hub):
    return schemathesis.openapi.from_url(f"{hub.service_url}/api/openapi.json")


def operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def identity_token(hub, identity: str) -> str:
    return hub.token if identity == "admin" else hub.user_token("fuzz-user")


def report(failures: list[str]) -> str:
    return f"{len(failures)} answer(s) the document does not allow:\n\n" + \
        "\n\n".join(failures[:20])


FRAMING = {"content-length", "transfer-encoding"}


def bad_framing(case) -> bool:
    """A generated header that frames the message (``Content-Length: e|/``): the HTTP
    layer (the proxy, Tornado) answers 400 before any handler sees the request, or
    waits for a body that never comes, so the document's answers do not apply."""
    return any(key.lower() in FRAMING for key in (case.headers or {}))


def validate(case, response, failures: list[str]) -> None:
    try:
        case.validate_response(response, checks=CHECKS)
    except (Failure, FailureGroup) as e:
        failures.append(f"{case.operation.label}: {e}")


@pytest.mark.parametrize("identity", ["admin", "user"])
def test_real_objects_get_documented_answers(hub, objects, identity):
    schema = load_schema(hub)
    headers = {"Authorization": f"token {identity_token(hub, identity)}"}
    failures, seen = [], []
    for operation in operations(schema):
        if operation.method.upper() != "GET":
            continue
        case = operation.Case(path_parameters=real_parameters(operation, objects))
        response = case.call(base_url=hub.service_url, headers=headers,
                             timeout=REQUEST_TIMEOUT, allow_redirects=False)
        seen.append((operation.label, response.status_code))
        validate(case, response, failures)
    assert not failures, report(failures)
    # each answered as for an object that exists (there is no server or application of
    # that name, no pool: anonymous launches are off here; pools are the admins')
    absent = {"GET /api/servers/{server_name}", "GET /api/applications/{name}/{app_id}",
              "GET /api/pools/{name}", "GET /try/{name}"}
    if identity == "user":  # admins' pages
        absent |= {"GET /api/pools", "GET /metrics", "GET /dashboard"}
    unexpected = [(label, status) for label, status in seen if status not in (200, 302)
                  and label not in absent]
    assert not unexpected


@pytest.mark.parametrize("identity", ["admin", "user"])
def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(hub, objects, identity):
    schema = load_schema(hub)
    headers = {"Authorization": f"token {identity_token(hub, identity)}"}
    chosen = [op for op in operations(schema)
              if (op.method.upper(), op.path) not in NOT_FUZZED[identity]]
    slice_seconds = FUZZ_SECONDS / 2 / (2 * len(chosen))
    failures, calls = [], {}
    log = os.path.join(hub.state_dir, "demo.log")
    log_start = os.path.getsize(log)

    def fuzzer(operation, mode, fixed: dict, until: float):
        """Hypothesis runs of one operation and mode, calling until ``until``."""

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode, **fixed))
        def fuzz(case):
            if time.monotonic() > until or bad_framing(case):
                return
            try:
                response = case.call(base_url=hub.service_url, headers=headers,
                                     timeout=REQUEST_TIMEOUT, allow_redirects=False)
            except requests.RequestException as e:
                failures.append(f"{operation.label}: no answer: {e}\n"
                                f"{case.as_curl_command()}")
                return
            calls[operation.label] = calls.get(operation.label, 0) + 1
            validate(case, response, failures)

        return fuzz

    for operation in chosen:
        pinned = PINNED[identity].get((operation.method.upper(), operation.path))
        fixed = {"path_parameters": {"name": objects[pinned]}} if pinned else {}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzzer(operation, mode, fixed, time.monotonic() + slice_seconds)()
            except (Unsatisfiable, schemathesis.errors.SerializationNotPossible):
                # no invalid request exists (nothing to make invalid), or none that
                # can be sent
                assert mode == GenerationMode.NEGATIVE, operation.label
    print("requests per operation:", dict(sorted(calls.items())))
    assert not failures, report(failures)
    with open(log, "rb") as f:  # e.g. a handler's error path that fails itself
        f.seek(log_start)
        logged = f.read().decode("utf-8", "replace")
    assert "Traceback" not in logged, \
        logged[max(0, logged.index("Traceback") - 2000):][:6000]
    missed = [op.label for op in chosen if not calls.get(op.label)]
    assert not missed, f"operations never called: {missed}"
