"""The service from a faulty or hostile client's side, through the demo Hub: text with
``%`` in URLs, and request bodies too large to buffer before authentication."""

from __future__ import annotations

import os
import socket
import time

import requests
import yaml

from tljh_rees.service import BODY_MAX

PERCENTS = "%s%d%(x)s"
QUOTED = "%25s%25d%25(x)s"  # PERCENTS in a URL path


def log_since(hub, offset: int) -> str:
    with open(os.path.join(hub.state_dir, "demo.log"), errors="replace") as f:
        f.seek(offset)
        return f.read()


def log_size(hub) -> int:
    return os.path.getsize(os.path.join(hub.state_dir, "demo.log"))


def service_port(hub) -> int:
    with open(os.path.join(hub.state_dir, "rees.yaml")) as f:
        return yaml.safe_load(f)["rees"]["service"]["port"]


def test_percent_signs_in_urls_get_a_clean_404_and_log_cleanly(hub):
    """User text was the format of tornado's HTTPError: tornado before 6.5 failed to log
    it ("Logging error"), later ones escape it, so people were shown ``%%s``."""
    start = log_size(hub)
    r = hub.rees("GET", f"gallery/{QUOTED}")
    assert r.status_code == 404
    assert r.json()["error"].startswith(f"There is no environment '{PERCENTS}' in the gallery")
    r = hub.request("GET", f"/services/rees/gallery/{QUOTED}")
    assert r.status_code == 404 and f"&#x27;{PERCENTS}&#x27;" in r.text
    r = hub.request("GET", f"/services/rees/gallery/{QUOTED}/render/{QUOTED}.ipynb")
    assert r.status_code == 404 and f"&#x27;{PERCENTS}&#x27;" in r.text
    time.sleep(1)  # the service's log reaches the Hub's through a pipe
    log = log_since(hub, start)
    assert "Logging error" not in log and "Traceback" not in log, log[-3000:]
    assert f"There is no environment '{PERCENTS}'" in log  # logged, as written


def raw_post(port: int, path: str, length: int, send: int) -> bytes:
    """POST declaring ``length`` bytes, send ``send`` of them; the answer (b'' if the
    connection was closed without one)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/zip\r\n"
                  f"Content-Length: {length}\r\n\r\n".encode())
        try:
            s.sendall(b"x" * send)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return b""
        return answer


def test_a_large_unauthenticated_body_is_refused_unread(hub):
    port = service_port(hub)
    start = time.monotonic()
    # declared far over any limit, body never sent: answered at once, not awaited
    answer = raw_post(port, "/services/rees/api/builds", 50 * 1024**2, 0)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert f"at most {BODY_MAX} bytes".encode() in answer
    # the import route allows a spec's worth (100 MiB + 1 MiB by default), not 1 GiB
    answer = raw_post(port, "/services/rees/api/specs/import", 1024**3, 0)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"at most 105906176 bytes" in answer
    assert time.monotonic() - start < 5
    # through the Hub's proxy, with the body sent: refused, and the service keeps serving
    try:
        r = requests.post(f"{hub.service_url}/api/builds", data=b"x" * (BODY_MAX + 1),
                          timeout=30)
        assert r.status_code in (413, 502, 503), r.status_code
    except requests.ConnectionError:
        pass
    assert hub.rees("GET", "health").status_code == 200
    # a small body still reaches the handler (which refuses it for want of a login)
    r = requests.post(f"{hub.service_url}/api/builds", json={"repo": "x"}, timeout=30)
    assert r.status_code == 403
