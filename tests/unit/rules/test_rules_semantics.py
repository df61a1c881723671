"""Semantics of the multi-event forms (issue 5 "Must show")."""

from __future__ import annotations

import random

from eunomia.processors.rules import ENGINE_KEY, Engine, load_text
from tests.support.enriched_events import S, ev, ids, run

HEAD = """
- rule: {name}
  id: {rid}
  desc: d
  condition: container.id != host
  output: "%process.name in %container.id"
  level: alert
  tags: [maturity_stable, mitre_execution, T1059]
"""


def seq(body: str, rid: str = "seq") -> str:
    return HEAD.format(name=rid, rid=rid) + body


ABC_UNTIL = seq("""  sequence:
    by: [container.id]
    maxspan: 10s
    until: event.kind = c
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
""")


def test_sequence_a_b_matches() -> None:
    assert len(run(ABC_UNTIL, [ev("a", 1), ev("b", 2)])) == 1


def test_sequence_a_b_c_matches_c_after_completion_changes_nothing() -> None:
    assert len(run(ABC_UNTIL, [ev("a", 1), ev("b", 2), ev("c", 3)])) == 1


def test_sequence_a_c_b_does_not_match_until_cancels() -> None:
    assert run(ABC_UNTIL, [ev("a", 1), ev("c", 2), ev("b", 3)]) == []


def test_until_cancels_only_its_own_key() -> None:
    out = run(ABC_UNTIL, [ev("a", 1, container="k1"), ev("c", 2, container="k2"), ev("b", 3, container="k1")])
    assert [a["group_key"] for a in out] == ["k1"]


def test_sequence_steps_must_share_the_join_key() -> None:
    assert run(ABC_UNTIL, [ev("a", 1, container="k1"), ev("b", 2, container="k2")]) == []


def test_maxspan_is_measured_from_the_first_event() -> None:
    three = seq("""  sequence:
    by: [container.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
      - condition: event.kind = c
""")
    # each gap is < 10 s but first -> last is 12 s: no match
    assert run(three, [ev("a", 0), ev("b", 6), ev("c", 12)]) == []
    assert len(run(three, [ev("a", 0), ev("b", 6), ev("c", 10)])) == 1


def test_newer_pending_sequence_overwrites_older_in_same_state() -> None:
    out = run(ABC_UNTIL, [ev("a", 1, eid="A1"), ev("a", 2, eid="A2"), ev("b", 3, eid="B")])
    assert len(out) == 1
    assert [e["id"] for e in out[0]["events"]] == ["A2", "B"]
    assert out[0]["first_seen_ns"] == 2 * S


def test_overwrite_keeps_one_pending_per_state() -> None:
    engine = Engine(load_text(ABC_UNTIL), lateness_ns=0)
    for t in range(5):
        engine.process(ev("a", t))
    state = engine.runners["seq"].states["c1"]
    assert list(state) == ["1"]


def test_runs_n_repeats_a_step() -> None:
    rule = seq("""  sequence:
    by: [container.id]
    maxspan: 30s
    steps:
      - condition: event.kind = a
        runs: 3
      - condition: event.kind = b
""")
    assert run(rule, [ev("a", 1), ev("a", 2), ev("b", 3)]) == []
    out = run(rule, [ev("a", 1), ev("a", 2), ev("a", 3), ev("b", 4)])
    assert len(out) == 1 and out[0]["event_count"] == 4


MISSING = seq("""  sequence:
    by: [container.id]
    maxspan: 1h
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
        missing: true
        within: 10s
""")


def test_missing_event_fires_only_after_t_in_event_time() -> None:
    engine = Engine(load_text(MISSING), lateness_ns=0)
    assert engine.process(ev("a", 0)) == []
    assert engine.process(ev("other", 5)) == []  # event time 5 s: too early
    assert engine.advance_watermark(10 * S) == []  # exactly T: a B at 10 s still counts
    out = engine.advance_watermark(10 * S + 1)
    assert len(out) == 1 and out[0]["first_seen_ns"] == 0


def test_missing_event_cancelled_by_the_awaited_event() -> None:
    assert run(MISSING, [ev("a", 0), ev("b", 9)], end=100) == []
    assert run(MISSING, [ev("a", 0), ev("b", 10)], end=100) == []
    assert len(run(MISSING, [ev("a", 0), ev("b", 11)], end=100)) == 1


def test_missing_event_uses_event_time_not_wall_clock() -> None:
    # a replay without events after A never fires, however long it takes
    assert run(MISSING, [ev("a", 0)]) == []


THRESH = HEAD.format(name="thr", rid="thr") + """  threshold:
    group-by: [container.id]
    timespan: 10s
    count: {gte: 5}
"""


def test_threshold_window_slides_across_bucket_boundaries() -> None:
    # 7,8,9 | 11,12: bucketed 10 s windows would see 3 and 2
    out = run(THRESH, [ev("open", t) for t in (7, 8, 9, 11, 12)])
    assert len(out) == 1 and out[0]["event_count"] == 5
    assert out[0]["first_seen_ns"] == 7 * S


def test_threshold_old_events_leave_the_window() -> None:
    assert run(THRESH, [ev("open", t) for t in (0, 1, 2, 3, 14)]) == []
    # inclusive bound: 0 and 10 are within 10 s
    assert len(run(THRESH, [ev("open", t) for t in (0, 1, 2, 3, 10)])) == 1


def test_threshold_fires_once_per_burst_then_restarts() -> None:
    out = run(THRESH, [ev("open", t / 10) for t in range(12)])
    assert len(out) == 2
    assert len({a["alert_id"] for a in out}) == 2


def test_threshold_groups_are_independent() -> None:
    events = [ev("open", t, container=f"k{t % 2}") for t in range(8)]
    assert run(THRESH, events) == []


def test_threshold_lt_judged_at_window_end() -> None:
    rule = HEAD.format(name="lt", rid="lt") + """  threshold:
    group-by: [container.id]
    timespan: 10s
    count: {lt: 3}
"""
    engine = Engine(load_text(rule), lateness_ns=0)
    engine.process(ev("open", 0, container="quiet"))
    for t in range(4):
        engine.process(ev("open", t, container="busy"))
    assert engine.advance_watermark(10 * S) == []
    out = engine.advance_watermark(11 * S)
    assert [a["group_key"] for a in out] == ["quiet"]


DISTINCT = HEAD.format(name="dst", rid="dst") + """  distinct:
    group-by: [container.id]
    field: destination.port
    timespan: 60s
    count: {gte: 4}
"""


def test_distinct_counts_values_not_events() -> None:
    assert run(DISTINCT, [ev("connect", t, dport=80) for t in range(10)]) == []
    out = run(DISTINCT, [ev("connect", t, dport=p) for t, p in enumerate((80, 80, 81, 82, 82, 83))])
    assert len(out) == 1 and out[0]["event_count"] == 4


def test_distinct_window_slides() -> None:
    # 50,55 | 61,65 in 60 s buckets would split; sliding sees 4 within 60 s
    times = [(50, 1), (55, 2), (61, 3), (65, 4)]
    assert len(run(DISTINCT, [ev("connect", t, dport=p) for t, p in times])) == 1
    times = [(0, 1), (30, 2), (61, 3), (65, 4)]
    assert run(DISTINCT, [ev("connect", t, dport=p) for t, p in times]) == []


def test_distinct_repeated_value_refreshes_its_time() -> None:
    times = [(0, 1), (30, 2), (40, 3), (59, 1), (90, 4)]  # port 1 seen again at 59
    assert len(run(DISTINCT, [ev("connect", t, dport=p) for t, p in times])) == 1


TEMPORAL = HEAD.format(name="tmp", rid="tmp") + """  {form}:
    group-by: [container.id]
    timespan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
"""


def test_temporal_any_order_within_timespan() -> None:
    rule = TEMPORAL.format(form="temporal")
    assert len(run(rule, [ev("b", 0), ev("a", 5)])) == 1
    assert run(rule, [ev("b", 0), ev("a", 11)]) == []


def test_temporal_ordered_needs_order() -> None:
    rule = TEMPORAL.format(form="temporal_ordered")
    assert run(rule, [ev("b", 0), ev("a", 5)]) == []
    assert len(run(rule, [ev("a", 0), ev("b", 5)])) == 1


def _scenario() -> list[dict]:
    rnd = random.Random(7)
    events = []
    for i in range(300):
        t = i * 0.25
        kind = rnd.choice(["a", "b", "c", "open", "connect"])
        events.append(ev(kind, t, container=f"k{rnd.randrange(3)}", dport=rnd.randrange(20),
                         eid=f"e{i}"))
    return events


ALL_FORMS = ABC_UNTIL + THRESH.split("\n", 1)[1] + DISTINCT.split("\n", 1)[1] + \
    MISSING.replace("id: seq", "id: miss").replace("rule: seq", "rule: miss").split("\n", 1)[1]


def test_out_of_order_within_lateness_gives_the_same_alerts_as_in_order() -> None:
    events = _scenario()
    in_order = run(ALL_FORMS, events, lateness=3, end=1000)
    shuffled = list(events)
    rnd = random.Random(1)
    # displace each event by at most 2.5 s (< 3 s lateness)
    shuffled.sort(key=lambda e: e["event"]["ts_ns"] + rnd.uniform(0, 2.5) * S)
    assert shuffled != events
    out = run(ALL_FORMS, shuffled, lateness=3, end=1000)
    assert sorted(ids(out)) == sorted(ids(in_order))
    assert len(in_order) > 5


def test_events_later_than_lateness_are_counted_and_ignored_by_stateful_rules() -> None:
    engine = Engine(load_text(ABC_UNTIL), lateness_ns=1 * S)
    engine.process(ev("a", 10))
    engine.process(ev("x", 20))
    assert engine.process(ev("b", 12)) == []
    assert engine.stats["late"] == 1


def test_state_expires_when_watermark_passes() -> None:
    engine = Engine(load_text(ABC_UNTIL + THRESH.split("\n", 1)[1]), lateness_ns=0)
    for i in range(1000):
        engine.process(ev("a", i / 1000, container=f"k{i}"))
        engine.process(ev("open", i / 1000, container=f"k{i}"))
    assert engine.state_size() == 2000
    engine.advance_watermark(100 * S)
    assert engine.state_size() == 0


def test_max_keys_bounds_state() -> None:
    engine = Engine(load_text(ABC_UNTIL), lateness_ns=0, max_keys=100)
    for i in range(1000):
        engine.process(ev("a", 1, container=f"k{i}"))
    assert len(engine.runners["seq"].states) == 100
    assert engine.timers.evicted == 900


def test_export_import_state_resumes_identically() -> None:
    rules = load_text(ALL_FORMS)
    events = _scenario()
    whole = Engine(rules, lateness_ns=3 * S)
    expect = [a for e in events for a in whole.process(e)] + whole.advance_watermark(1000 * S)
    first = Engine(rules, lateness_ns=3 * S, track_dirty=True)
    got = [a for e in events[:150] for a in first.process(e)]
    saved = {}
    for rid, key in first.take_dirty():
        saved[(rid, key)] = first.export_state(rid, key)
    second = Engine(rules, lateness_ns=3 * S, track_dirty=True)
    for (rid, key), blob in saved.items():
        if blob is not None and rid != ENGINE_KEY:
            second.import_state(rid, key, blob)
    second.import_state(ENGINE_KEY, "", saved[(ENGINE_KEY, "")])  # type: ignore[arg-type]
    got += [a for e in events[150:] for a in second.process(e)] + second.advance_watermark(1000 * S)
    assert ids(got) == ids(expect)


def test_reload_keeps_state_of_unchanged_rules_only() -> None:
    engine = Engine(load_text(ABC_UNTIL + THRESH.split("\n", 1)[1]), lateness_ns=0)
    engine.process(ev("a", 1))
    for t in range(4):
        engine.process(ev("open", t))
    changed = THRESH.split("\n", 1)[1].replace("gte: 5", "gte: 6")
    dropped = engine.replace_ruleset(load_text(ABC_UNTIL + changed))
    assert dropped == ["thr"]
    assert [a["rule_id"] for a in engine.process(ev("b", 5))] == ["seq"]
    assert engine.process(ev("open", 5)) == []


def test_alert_ids_are_deterministic() -> None:
    a = run(ABC_UNTIL, [ev("a", 1, eid="X"), ev("b", 2, eid="Y")])
    b = run(ABC_UNTIL, [ev("a", 1, eid="X"), ev("b", 2, eid="Z")])
    assert a[0]["alert_id"] == b[0]["alert_id"]
    c = run(ABC_UNTIL, [ev("a", 1, eid="W"), ev("b", 2, eid="Y")])
    assert c[0]["alert_id"] != a[0]["alert_id"]


def _snapshot(engine: Engine, saved: dict) -> None:
    for rid, key in engine.take_dirty():
        saved[(rid, key)] = engine.export_state(rid, key)


def _restore(rules, saved: dict) -> Engine:
    engine = Engine(rules, lateness_ns=3 * S, track_dirty=True)
    for (rid, key), blob in saved.items():
        if blob is not None:
            engine.import_state(rid, key, blob)
    engine.take_dirty()
    return engine


def test_replay_behind_the_saved_state_repeats_alerts_identically() -> None:
    """A worker saves state after each batch but its input offset is committed
    later, so its successor restores state that already holds events it then
    reads again. Those events must not count twice: every alert, repeated or not,
    must equal the uninterrupted run's alert with that id."""
    rules = load_text(ALL_FORMS)
    events = _scenario()
    whole = Engine(rules, lateness_ns=3 * S)
    expect = {a["alert_id"]: a for e in events for a in whole.process(e)}
    expect |= {a["alert_id"]: a for a in whole.advance_watermark(1000 * S)}
    assert len(expect) > 5
    for saved_at, committed in [(150, 100), (150, 149), (200, 120), (60, 0), (290, 280)]:
        first = Engine(rules, lateness_ns=3 * S, track_dirty=True)
        saved: dict = {}
        got = []
        for lo in range(0, saved_at, 10):  # batches of 10, state saved after each
            got += [a for e in events[lo:min(lo + 10, saved_at)] for a in first.process(e)]
            _snapshot(first, saved)
        second = _restore(rules, saved)
        got += [a for e in events[committed:] for a in second.process(e)]
        got += second.advance_watermark(1000 * S)
        by_id: dict = {}
        for a in got:
            assert by_id.setdefault(a["alert_id"], a) == a, (saved_at, committed, a["rule_id"])
        assert by_id == expect, (saved_at, committed)
