"""The command-line client's pure parts: event streams, tables, errors, URLs, the token's
sources. (The client against a real Hub: tests/test_client.py.)"""

from __future__ import annotations


import pytest
import requests

from tljh_rees.client import (ClientError, api_error, error_text, format_limits,
                              format_table, full_url, read_token, sse_events)

pytestmark = pytest.mark.unit


def test_sse_events_skip_comments_and_fields_and_join_data_lines():
    lines = [": keepalive", "", "id: 1", "event: phase",
             'data: {"id": 1, "type": "phase", "phase": "running", "message": ""}', "",
             ": keepalive", "", "event: log", 'data: {"type": "log",', 'data:  "message": "é"}',
             "", 'data: {"type": "phase", "phase": "built"}']  # no blank line at the end
    assert list(sse_events(lines)) == [
        {"id": 1, "type": "phase", "phase": "running", "message": ""},
        {"type": "log", "message": "é"},
        {"type": "phase", "phase": "built"},
    ]


def test_tables_align_columns_and_show_missing_values():
    text = format_table(["template", "size", "anonymous"],
                        [["course-a", 2, True], ["b", None, False]])
    assert text.splitlines() == ["template  size  anonymous",
                                 "course-a  2     yes",
                                 "b         -     no"]


def test_limits():
    assert format_limits({"memory": "512M", "cpu": 0.5}) == "512M, 0.5 CPU"
    assert format_limits({"memory": None, "cpu": 2.0}) == "2 CPU"
    assert format_limits(None) == "-"


def answer(status: int, body: bytes, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    response.url = "http://hub.example.org/services/rees/api/pools"
    return response


def test_error_lines_name_the_field_the_retry_and_non_api_answers():
    assert api_error({"error": "expected a size", "status": 400, "field": "limits.memory"}) \
        == "expected a size (field: limits.memory)"
    assert api_error({"error": "limits.cpu: expected 0.01 to 2", "field": "limits.cpu"}) \
        == "limits.cpu: expected 0.01 to 2"
    assert api_error({"templates": []}) is None
    assert error_text(answer(429, b'{"error": "over the cap", "status": 429}',
                             {"Retry-After": "3599"})) == "over the cap; retry after 3599 s"
    text = error_text(answer(404, b"<html>Not Found</html>"))
    assert text.startswith("HTTP 404 from http://hub.example.org/") and "--url" in text


def test_locations_become_urls_of_the_hub_with_its_base_path():
    assert full_url("http://127.0.0.1:8000", "/user/ada/x/") == \
        "http://127.0.0.1:8000/user/ada/x/"
    assert full_url("https://example.org/jhub/", "/jhub/user/ada/") == \
        "https://example.org/jhub/user/ada/"


def test_the_token_comes_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TLJH_REES_TOKEN", raising=False)
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "from-hub")
    assert read_token(None) == "from-hub"
    monkeypatch.setenv("TLJH_REES_TOKEN", " from-rees\n")
    assert read_token(None) == "from-rees"
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert read_token(str(path)) == "from-file"
    path.write_text("\n")
    with pytest.raises(ClientError) as e:
        read_token(str(path))
    assert e.value.code == 2 and "empty" in str(e.value)


def test_no_option_takes_a_token_not_even_by_abbreviation(capsys):
    """``--token`` must not be read as an abbreviation of ``--token-file``."""
    from tljh_rees.cli import build_parser

    for argv in (["client", "--token", "x", "status"], ["client", "status", "--token", "x"],
                 ["client", "status", "--token=x"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 2, argv
    assert "--token" in capsys.readouterr().err
    args = build_parser().parse_args(["client", "--json", "status", "--url", "http://h"])
    assert args.json and args.url == "http://h"
    assert not hasattr(build_parser().parse_args(["client", "status"]), "token")
