"""Event time per source (FleetEngine): hosts sharing a partition do not make
each other's events late, a clock jump is refused, late events are counted and
alerted, and cross-host rules wait for the slowest live host."""

from __future__ import annotations

from typing import Any

import pytest

from eunomia.processors.rules import load_text
from eunomia.processors.rules.fleet import (
    FLEET_KEY,
    HEARTBEAT,
    LATE_RULE,
    EventTimeError,
    FleetEngine,
    is_host_local,
)
from eunomia.processors.rules.state_codec import dirty_states, restore_engine
from tests.support.enriched_events import S, ev

SEQ = """
- rule: a then b
  id: ab
  desc: d
  condition: container.id != host
  output: "%container.id"
  level: alert
  sequence:
    by: [container.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
"""
MISSING = """
- rule: a without b
  id: amiss
  desc: d
  condition: container.id != host
  output: "%container.id"
  level: alert
  sequence:
    by: [container.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
        missing: true
        within: 5s
"""
CROSS = """
- rule: same user a then b anywhere
  id: xuser
  desc: d
  condition: container.id != host
  output: "%user.id"
  level: alert
  sequence:
    by: [user.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
"""


def on(host: str, kind: str, t: float, **kw: Any) -> dict[str, Any]:
    e = ev(kind, t, **kw)
    e["host"] = {"id": host, "boot_id": "b1"}
    e["event"]["id"] = f"{host}:{e['event']['id']}"
    return e


def beat(host: str, t: float) -> dict[str, Any]:
    return on(host, HEARTBEAT, t)


def feed(engine: FleetEngine, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        out += engine.process(e)
    return out


def rules_of(alerts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((a["rule_id"], a["host_id"]) for a in alerts)


def test_a_delayed_host_is_not_late() -> None:
    """Host B's events arrive a minute after host A's of the same time: both match."""
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S)
    a_events = [on("A", "a", 1, container="ca"), on("A", "b", 2, container="ca")]
    a_events += [on("A", "x", t) for t in range(3, 70)]
    b_events = [on("B", "a", 1, container="cb"), on("B", "b", 2, container="cb")]
    out = feed(engine, a_events + b_events) + engine.flush()
    assert rules_of(out) == [("ab", "A"), ("ab", "B")]
    assert engine.stats["late"] == 0


def test_a_host_far_ahead_moves_only_its_own_windows() -> None:
    """A host 30 s ahead on the same partition: the others' sequences still match."""
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S)
    events = [on("FAST", "x", 30 + t, container="cf") for t in range(5)]
    events += [on("A", "a", 1, container="ca"), on("A", "b", 3, container="ca")]
    out = feed(engine, events) + engine.flush()
    assert rules_of(out) == [("ab", "A")]


def test_one_event_a_century_ahead_is_refused_and_changes_nothing() -> None:
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S)
    feed(engine, [on("A", "x", 1), on("B", "x", 1)])
    with pytest.raises(EventTimeError, match="ahead of host 'A'"):
        engine.process(on("A", "a", 100 * 365 * 86400, container="ca"))
    out = feed(engine, [on("A", "a", 2, container="ca"), on("A", "b", 3, container="ca"),
                        on("B", "a", 2, container="cb"), on("B", "b", 3, container="cb")])
    assert rules_of(out + engine.flush()) == [("ab", "A"), ("ab", "B")]
    assert engine.stats["late"] == 0 and engine.stats["refused"] == 1


def test_a_new_host_far_ahead_of_the_fleet_is_refused() -> None:
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S)
    feed(engine, [on("A", "x", 1)])
    with pytest.raises(EventTimeError):
        engine.process(on("NEW", "x", 10**6))


def test_a_clock_that_really_moved_is_followed_after_one_refusal() -> None:
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S, max_jump_ns=60 * S)
    feed(engine, [on("A", "x", 1)])
    with pytest.raises(EventTimeError):
        engine.process(on("A", "x", 1000))
    feed(engine, [on("A", "x", 1001)])  # the second one in a row is the new time
    assert engine.clocks[next(iter(engine.clocks))].max_ts == 1001 * S
    assert any("moved" in n for n in engine.notices)


def test_late_events_are_counted_per_rule_and_host_and_alerted_once_per_burst() -> None:
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S)
    feed(engine, [on("A", "x", 100)])
    out = feed(engine, [on("A", "a", 10, container="ca"), on("A", "b", 11, container="ca")])
    assert [a["rule_id"] for a in out] == [LATE_RULE]
    assert engine.late[("ab", "A")] == 2
    assert out[0]["host_id"] == "A" and "ab" in out[0]["message"]
    # an on-time stateful event ends the burst; the next late one alerts again
    feed(engine, [on("A", "a", 101, container="ca")])
    again = feed(engine, [on("A", "b", 12, container="ca")])
    assert [a["rule_id"] for a in again] == [LATE_RULE]
    assert again[0]["alert_id"] != out[0]["alert_id"]


def test_heartbeats_advance_only_their_own_host() -> None:
    """A missing-step rule fires on its host's heartbeat, not on another host's time."""
    engine = FleetEngine(load_text(MISSING), lateness_ns=1 * S)
    out = feed(engine, [on("A", "a", 1, container="ca"), on("B", "x", 50, container="cb")])
    assert out == []  # B's time says nothing about A
    out = feed(engine, [beat("A", 10)])
    assert rules_of(out) == [("amiss", "A")]


def test_cross_host_rules_wait_for_the_slowest_live_host() -> None:
    engine = FleetEngine(load_text(CROSS), lateness_ns=1 * S)
    assert not is_host_local(engine.fleet_rules.rules[0])
    out = feed(engine, [on("A", "a", 1, uid=7), on("B", "x", 1), on("A", "x", 30)])
    assert out == []  # B has not passed 1 s yet: the fleet rule waits for it
    out = feed(engine, [on("B", "b", 2, uid=7), beat("B", 30)])
    assert rules_of(out) == [("xuser", "B")]


def test_a_silent_host_stops_holding_cross_host_rules_back() -> None:
    engine = FleetEngine(load_text(CROSS), lateness_ns=1 * S, host_timeout_ns=60 * S)
    feed(engine, [on("GONE", "x", 1), on("A", "a", 2, uid=7), on("A", "b", 3, uid=7)])
    out = feed(engine, [beat("A", 100)])
    assert rules_of(out) == [("xuser", "A")]
    assert any("GONE" in n and "closed out" in n for n in engine.notices)


def test_state_round_trip_keeps_every_hosts_time_and_windows() -> None:
    engine = FleetEngine(load_text(SEQ), lateness_ns=2 * S, track_dirty=True)
    feed(engine, [on("A", "a", 1, container="ca"), on("B", "a", 1, container="cb"), on("A", "x", 5)])
    saved = [(rid, key, value) for rid, key, value in dirty_states(engine) if value is not None]
    assert any(rid == FLEET_KEY for rid, _, _ in saved)
    successor = FleetEngine(load_text(SEQ), lateness_ns=2 * S, track_dirty=True)
    restored, dropped = restore_engine(successor, saved)
    assert dropped == [] and restored == len(saved)
    out = feed(successor, [on("A", "b", 6, container="ca"), on("B", "b", 2, container="cb")])
    assert rules_of(out + successor.flush()) == [("ab", "A"), ("ab", "B")]
    assert successor.stats["late"] == 0


def test_alert_ids_equal_a_single_engines_for_one_host() -> None:
    """One host: the fleet engine raises exactly what the plain engine did."""
    from tests.support.enriched_events import run

    events = [ev("a", 1, container="k"), ev("b", 2, container="k"), ev("a", 20, container="k"),
              ev("b", 40, container="k")]
    engine = FleetEngine(load_text(SEQ), lateness_ns=0)
    fleet = feed(engine, events) + engine.flush()
    assert sorted(a["alert_id"] for a in fleet) == sorted(a["alert_id"] for a in run(SEQ, events))


def test_a_successor_skips_what_its_restored_state_already_applied() -> None:
    """Offsets up to the saved one are repeats: no late count, no alert twice."""
    engine = FleetEngine(load_text(SEQ), lateness_ns=0, track_dirty=True)
    events = [on("A", "a", 1, container="ca"), on("A", "b", 2, container="ca"), on("A", "x", 30)]
    first = [a for off, e in enumerate(events) for a in engine.process(e, offset=off)]
    assert rules_of(first) == [("ab", "A")]
    saved = [(rid, key, value) for rid, key, value in dirty_states(engine) if value is not None]
    successor = FleetEngine(load_text(SEQ), lateness_ns=0, track_dirty=True)
    restore_engine(successor, saved)
    again = [a for off, e in enumerate(events) for a in successor.process(e, offset=off)]
    assert again == [] and successor.stats["late"] == 0 and successor.stats["repeated"] == 3
    assert rules_of(successor.process(on("A", "a", 40, container="ca"), offset=3)) == []
