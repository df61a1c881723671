"""Sequence semantics in the live rules worker (a real ``eunomia worker rules``
on the real broker): events with equal times are matched in the order of
their offsets, and a sequence without maxspan is bounded by the
``rules.default_maxspan_s`` setting the worker was started with."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.processors.rules import Engine, load_files
from tests.integration.test_rules_worker import (
    CODEC,
    LATENESS_NS,
    Alerts,
    Item,
    Worker,
    publish,
    start_ready,
    stop,
)
from tests.support.enriched_events import S, ev

pytestmark = pytest.mark.kafka

SITE = """
- rule: A then B
  id: ties
  desc: a then b in one container
  condition: container.id != host
  output: "%process.name"
  level: alert
  tags: [maturity_stable, mitre_execution, T1059]
  sequence:
    by: [container.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
- rule: A without B
  id: absent
  desc: a never followed by b (no maxspan, so the default span bounds it)
  condition: container.id != host
  output: "%process.name"
  level: alert
  tags: [maturity_stable, mitre_execution, T1059]
  sequence:
    by: [container.id]
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
        missing: true
"""
DEFAULT_MAXSPAN_S = 5


def _item(partition: int, e: dict[str, Any]) -> Item:
    value = CODEC.encode("enriched_event", e)
    key = f"{e['host']['id']}/{e['container']['id']}".encode()
    return Item(key, partition, value, CODEC.decode(value, expect="enriched_event"))


def test_ties_in_offset_order_and_default_maxspan_from_settings(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partition 0: nine unrelated events, then A and B at one nanosecond as
    offsets 9 and 10 (their ids end in the offset: "...r10" sorts before
    "...r9"); the pair must match. Partition 1: an A, then an event 30 s later;
    with a 5 s default span the missing B fires (with the built-in hour it
    would not). Live ids equal the engine's over the same partitions."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    t0 = time.time() + 3600  # event time ahead of the idle timer's wall clock
    c1, c2 = f"c1-{uuid.uuid4().hex[:6]}", f"c2-{uuid.uuid4().hex[:6]}"
    p0 = [ev("open", t0 + i / 10, container=c1, eid=f"h1:b1:r{i}") for i in range(9)]
    p0 += [ev("a", t0 + 1, container=c1, eid="h1:b1:r9"), ev("b", t0 + 1, container=c1, eid="h1:b1:r10")]
    p1 = [ev("a", t0, container=c2, eid=f"{c2}-a"), ev("open", t0 + 30, container=c2, eid=f"{c2}-clock")]
    items = [_item(0, e) for e in p0] + [_item(1, e) for e in p1]

    engine = Engine(load_files([site]), lateness_ns=LATENESS_NS, default_span_ns=DEFAULT_MAXSPAN_S * S)
    expected = [a for it in items for a in engine.process(it.record)] + engine.flush()
    assert sorted((a["rule_id"], a["group_key"]) for a in expected) == [("absent", c2), ("ties", c1)]

    create_topics(settings)
    monkeypatch.setenv("EUNOMIA_RULES__DEFAULT_MAXSPAN_S", str(DEFAULT_MAXSPAN_S))
    started: list[Worker] = []
    alerts = Alerts(settings)
    try:
        w = start_ready(started, settings, tmp_path, "rules", "--no-pack", "--rules", str(site))
        publish(settings, items)
        want = {a["alert_id"] for a in expected}
        alerts.avro.until(lambda: want <= alerts.ids(), "the tie and the default-span alerts",
                          alive=w.check_alive)
        ties = next(a for _, a in alerts.decoded() if a["rule_id"] == "ties")
        assert [e["id"] for e in ties["events"]] == ["h1:b1:r9", "h1:b1:r10"]
    finally:
        alerts.close()
        for started_worker in started:
            stop(started_worker)
