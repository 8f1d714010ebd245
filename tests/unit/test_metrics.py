"""The metrics module: its text parses as Prometheus' format, the hooks move the
counters, the gauges are read at scrape (servers from one Hub call, kept briefly), and
the build queue and launcher call the hooks."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from tljh_rees.builds.request import BuildRequest
from tljh_rees.fakes import FakeSource
from tljh_rees.operations.metrics import Metrics

from .conftest import ALICE


def samples(metrics: Metrics) -> dict:
    """{(sample name, sorted labels): value} of the parsed text."""
    found = {}
    for family in text_string_to_metric_families(metrics.text().decode()):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def test_the_text_parses_and_the_hooks_move_the_counters():
    metrics = Metrics()
    before = samples(metrics)
    assert ("rees_gc_removed_images_total", ()) in before
    assert ("rees_build_queue_length", ()) in before
    assert any(name.startswith("process_") for name, _ in before)  # process collectors
    metrics.build_finished("built", 42.0)
    metrics.build_finished("built", None)  # a cache answer: counted, not timed
    metrics.build_finished("failed", 5.0)
    metrics.launch_ready(3.5, pooled=False)
    metrics.launch_ready(0.2, pooled=True)
    metrics.gc_removed_images(3)
    after = samples(metrics)
    assert after[("rees_builds_total", (("status", "built"),))] == 2
    assert after[("rees_builds_total", (("status", "failed"),))] == 1
    assert after[("rees_build_duration_seconds_count", ())] == 2
    assert after[("rees_build_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert after[("rees_launch_duration_seconds_count", (("pooled", "false"),))] == 1
    assert after[("rees_launch_duration_seconds_count", (("pooled", "true"),))] == 1
    assert after[("rees_gc_removed_images_total", ())] == 3


def test_each_instance_has_its_own_registry():
    one, two = Metrics(), Metrics()
    one.build_finished("built", 1)
    assert ("rees_builds_total", (("status", "built"),)) not in samples(two)


async def test_gauges_are_read_at_scrape_with_one_hub_call_kept_briefly():
    now = [0.0]
    calls = []

    async def active_users():
        calls.append(now[0])
        return [{"name": "a", "servers": {
                    "x": {"ready": True, "user_options": {"environment": "env1"}},
                    "y": {"ready": True, "user_options": {"template": "t"}},
                    "z": {"ready": False, "pending": "spawn",
                          "user_options": {"environment": "env1"}}}},
                {"name": "b", "servers": {"": {"ready": True, "user_options": {
                    "environment": "env1"}}}}]

    metrics = Metrics(servers_ttl=10, clock=lambda: now[0])
    queue = [1, 2, 3]
    metrics.watch(queue_length=lambda: len(queue), pools=lambda: {"t": 2},
                  disk=lambda: 12345, active_users=active_users)
    await metrics.refresh()
    await metrics.refresh()  # within the ttl: no second call
    assert calls == [0.0]
    found = samples(metrics)
    assert found[("rees_build_queue_length", ())] == 3
    assert found[("rees_running_servers", (("environment", "env1"),))] == 2
    assert found[("rees_running_servers", (("environment", "template:t"),))] == 1
    assert found[("rees_pool_available", (("template", "t"),))] == 2
    assert found[("rees_images_disk_bytes", ())] == 12345
    now[0] = 11
    await metrics.refresh()
    assert calls == [0.0, 11]


async def test_a_failing_source_does_not_break_the_scrape():
    async def down():
        raise ConnectionError("hub down")

    metrics = Metrics()
    metrics.watch(queue_length=lambda: 1 / 0, active_users=down)
    await metrics.refresh()
    assert samples(metrics)[("rees_build_queue_length", ())] == 0


async def test_the_build_queue_calls_the_hook(manager, builder):
    metrics = Metrics()
    manager.on_finished.append(metrics.build_finished)
    source = FakeSource("https://example.org/r", {"main": "1" * 40})
    build = await manager.submit(BuildRequest(source=source, ref="main", name="env",
                                              requester=ALICE))
    for _ in range(500):
        if manager.record(build.id).done:
            break
        await asyncio.sleep(0.01)
    await manager.submit(BuildRequest(source=source, ref="main", name="env",
                                      requester=ALICE))  # answered from the cache
    found = samples(metrics)
    assert found[("rees_builds_total", (("status", "built"),))] == 2
    assert found[("rees_build_duration_seconds_count", ())] == 1
