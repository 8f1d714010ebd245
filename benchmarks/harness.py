"""What the benchmarks share: a private demo Hub, fixture repositories, timing."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager

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


def summary(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return (f"median {statistics.median(samples) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   "
            f"n={len(samples)}")


def table(rows: list[tuple[str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
