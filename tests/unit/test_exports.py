"""Export jobs without Docker: who gets pushed, and what a deleted environment leaves."""

from __future__ import annotations

import json
import os


from tljh_rees.export.jobs import ExportManager
from tljh_rees.store.models import Environment



def env(name, public, digit="1"):
    return Environment(name=name, image=f"rees-{name}:abc", image_id="sha256:" + digit * 64,
                       commit="c" * 40, public=public)


async def test_only_public_environments_go_to_the_shared_registry(tmp_path):
    manager = ExportManager(lambda: None, str(tmp_path), push_registry="oras://r.example/x")
    public, private = manager.start(env("open", True, "1")), manager.start(env("shut", False, "2"))
    await manager.shutdown()
    assert public["push"] is True and private["push"] is False
    plain = ExportManager(lambda: None, str(tmp_path / "plain"))
    assert plain.start(env("open", True, "3"))["push"] is False
    await plain.shutdown()


def test_a_deleted_environment_leaves_no_exports(tmp_path):
    manager = ExportManager(lambda: None, str(tmp_path))
    for name, digit in (("gone", "a"), ("kept", "b")):
        export_id = digit * 64
        with open(manager.sif_path(export_id), "w") as f:
            f.write("sif")
        with open(os.path.join(str(tmp_path), f"{export_id}.json"), "w") as f:
            json.dump({"id": export_id, "environment": name, "status": "done",
                       "created": "2026-01-01T00:00:00Z"}, f)
    manager.forget_environment(env("gone", True), [])
    assert manager.for_environment("gone") == []
    assert [j["environment"] for j in manager.for_environment("kept")] == ["kept"]
    assert not os.path.exists(manager.sif_path("a" * 64))
