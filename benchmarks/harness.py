"""What the benchmarks share: a private demo Hub, fixture repositories, timing."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.helpers import (  # noqa: E402
    GitRepo,
    remove_built_images,
    start_demo_hub,
    stop_demo_hub,
)
from tljh_rees.engine.baseimage import (  # noqa: E402
    BaseImageRecipe,
    default_ca_bundle,
    ensure_base_image,
)
from tljh_rees.engine.host import ensure_engine  # noqa: E402


def base_image() -> str:
    ensure_engine()
    return ensure_base_image(BaseImageRecipe(ca_bundle=default_ca_bundle()),
                             progress=lambda m: print(f"[base image] {m}", file=sys.stderr))


@contextmanager
def demo_hub(rees_section: dict | None = None, rees_config: str = ""):
    """A Hub of its own (removed afterwards, with the images it built); ``rees_config``:
    the admin's ``rees_config.py`` for its service (e.g. quicker loops)."""
    with tempfile.TemporaryDirectory(prefix="rees-bench-") as state:
        if rees_config:
            with open(os.path.join(state, "rees_config.py"), "w") as f:
                f.write(rees_config)
        proc, hub = start_demo_hub(state, rees_section)
        try:
            yield hub
        finally:
            stop_demo_hub(proc, hub)
            remove_built_images(os.path.join(state, "rees", "rees.sqlite"))


@contextmanager
def repo():
    with tempfile.TemporaryDirectory(prefix="rees-bench-repo-") as path:
        yield GitRepo(path)


def wait_build(hub, build_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = hub.rees("GET", f"builds/{build_id}")
        if r.status_code == 200 and r.json()["status"] in ("built", "failed", "cancelled"):
            return r.json()
        time.sleep(0.05)
    raise RuntimeError(f"build {build_id} did not finish")


def p50(samples: list[float]) -> float:
    return statistics.median(samples)


def p95(samples: list[float]) -> float:
    """Nearest rank (with 10 samples or fewer: the largest)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def answers(hub, location: str, token: str, timeout: float = 300) -> None:
    """Until a server at ``location`` answers 200 through the proxy with ``token`` (a
    redirect to the Hub's pages while it starts is not an answer)."""
    url = f"{hub.url}{location}api/status"
    headers = {"Authorization": f"token {token}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, headers=headers, allow_redirects=False,
                            timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def summary(samples: list[float]) -> str:
    return (f"median {p50(samples) * 1000:8.1f} ms   p95 {p95(samples) * 1000:8.1f} ms   "
            f"n={len(samples)}")


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
