"""Gap and drop detection as pure logic: what becomes an alert, and what does not."""

from __future__ import annotations

from eunomia.processors.health.gaps import GapTracker
from eunomia.schemas import AvroCodec


def test_contiguous_seq_is_silent_and_a_gap_names_the_range() -> None:
    t = GapTracker()
    assert [a for s in (1, 2, 3) for a in t.on_seq("h1", "b1", s, s)] == []
    (alert,) = t.on_seq("h1", "b1", 9, 9)
    assert alert["rule_id"] == "producer-gap"
    assert alert["message"] == "producer h1 lost raw.events seq 4-8 (5 events, seen by raw.events seq)"
    assert alert["fields"]["first_seq"] == "4" and alert["fields"]["last_seq"] == "8"
    AvroCodec().encode("alert", alert)  # fits the contract


def test_restart_and_new_boot_are_not_gaps() -> None:
    t = GapTracker()
    for s in (1, 2, 3):
        t.on_seq("h1", "b1", s, s)
    assert t.on_seq("h1", "b1", 1, 10) == []  # producer restarted: seq starts again
    assert t.on_seq("h1", "b2", 1, 11) == []  # new boot
    assert t.on_seq("h2", "b1", 500, 12) == []  # first sight of a host (older data expired)


def test_health_lost_ranges_and_seq_gap_share_one_alert_id() -> None:
    t = GapTracker()
    for s in (1, 2):
        t.on_seq("h1", "b1", s, s)
    (from_seq,) = t.on_seq("h1", "b1", 6, 6)
    u = GapTracker()
    rec = {"host_id": "h1", "boot_id": "b1", "ts_ns": 7, "lost_ranges": [{"first": 3, "last": 5}],
           "drops_by_cause": {}}
    (from_health,) = u.on_health(rec)
    assert from_health["alert_id"] == from_seq["alert_id"]
    assert u.on_health(rec) == []  # reported once


def test_growing_drops_alert_with_the_delta() -> None:
    t = GapTracker()
    base = {"host_id": "h1", "boot_id": "b1", "ts_ns": 1, "lost_ranges": []}
    assert t.on_health({**base, "drops_by_cause": {}}) == []
    (a,) = t.on_health({**base, "drops_by_cause": {"ringbuf:open": 40}})
    assert a["rule_id"] == "producer-drops" and a["event_count"] == 40
    assert t.on_health({**base, "drops_by_cause": {"ringbuf:open": 40}}) == []
    (b,) = t.on_health({**base, "drops_by_cause": {"ringbuf:open": 45}})
    assert b["event_count"] == 5 and b["alert_id"] != a["alert_id"]


def test_a_range_that_grew_after_its_report_alerts_only_the_new_part() -> None:
    t = GapTracker()
    base = {"host_id": "h1", "boot_id": "b1", "ts_ns": 1, "drops_by_cause": {}}
    (a,) = t.on_health({**base, "lost_ranges": [{"first": 10, "last": 20}]})
    (b,) = t.on_health({**base, "lost_ranges": [{"first": 10, "last": 35}]})
    assert (b["fields"]["first_seq"], b["fields"]["last_seq"]) == ("21", "35")
    assert b["alert_id"] != a["alert_id"]
    assert t.on_health({**base, "lost_ranges": [{"first": 10, "last": 35}]}) == []
    assert t.on_health({**base, "lost_ranges": [{"first": 21, "last": 35}]}) == []
    (c,) = t.on_health({**base, "lost_ranges": [{"first": 10, "last": 40}]})
    assert (c["fields"]["first_seq"], c["fields"]["last_seq"]) == ("36", "40")
