"""Sequence semantics of issue 24: until with its own keys, join keys that cannot collide."""

from __future__ import annotations

from typing import Any

import pytest

from eunomia.processors.rules import RuleLoadError, alert_id, load_text
from tests.unit.rules.fixtures import ev, parent, run

HEAD = """
- rule: {rid}
  id: {rid}
  desc: d
  condition: container.id != host
  output: "%process.name"
  level: alert
  tags: [maturity_stable, mitre_execution, T1059]
"""


def rule(body: str, rid: str = "seq") -> str:
    return HEAD.format(rid=rid) + body


# -- until with its own keys ---------------------------------------------------------------------

# Steps join on a process's own id; the until (a child's exit) joins on its parent's id.
UNTIL = """    until:
      condition: event.kind = exit
      by: [process.parent.exec_id]
"""
UNTIL_OWN_KEYS = rule("""  sequence:
    by: [container.id]
    maxspan: 60s
""" + UNTIL + """    steps:
      - condition: event.kind = a
        by: [process.exec_id]
      - condition: event.kind = b
        by: [process.exec_id]
""")
BARE_UNTIL = UNTIL_OWN_KEYS.replace(UNTIL, "    until: event.kind = exit\n")


def _until_run(text: str) -> list[str]:
    # the exit is P2's own and its parent is P1: joined on the parent, it cancels P1 only
    events = [ev("a", 1, exec_id="P1"), ev("a", 1, exec_id="P2"),
              ev("exit", 2, exec_id="P2", ancestors=[parent("sh", "P1")]),
              ev("b", 3, exec_id="P1"), ev("b", 3, exec_id="P2")]
    return sorted(a["group_key"] for a in run(text, events))


def test_until_with_its_own_keys_cancels_only_the_sequence_it_joins() -> None:
    assert _until_run(UNTIL_OWN_KEYS) == ["c1|P2"]


def test_until_without_keys_joins_on_the_first_steps_keys() -> None:
    # the rule as it had to be written before: the exit joins on its own exec_id (P2)
    assert _until_run(BARE_UNTIL) == ["c1|P1"]


def test_until_keys_must_match_the_steps_in_number() -> None:
    wide = UNTIL_OWN_KEYS.replace("by: [process.parent.exec_id]", "by: [process.parent.exec_id, user.id]")
    with pytest.raises(RuleLoadError) as exc:
        load_text(wide)
    assert [d.code for d in exc.value.diagnostics if d.is_error] == ["E027"]
    assert "'until' must have as many 'by' fields as the steps (1)" in str(exc.value)
    bad = UNTIL_OWN_KEYS.replace("by: [process.parent.exec_id]", "by: [process.nope]\n      when: x")
    with pytest.raises(RuleLoadError) as exc:
        load_text(bad)
    assert sorted(d.code for d in exc.value.diagnostics if d.is_error) == ["E005", "E011"]


def test_until_keys_change_the_fingerprint_a_plain_until_keeps_its_own() -> None:
    with_keys = load_text(UNTIL_OWN_KEYS).rules[0].fingerprint
    other_keys = load_text(UNTIL_OWN_KEYS.replace("process.parent.exec_id", "process.exec_id"))
    assert other_keys.rules[0].fingerprint != with_keys
    plain = UNTIL_OWN_KEYS.replace(UNTIL, UNTIL.replace("      by: [process.parent.exec_id]\n", ""))
    assert load_text(plain).rules[0].fingerprint == load_text(BARE_UNTIL).rules[0].fingerprint


# -- join keys that cannot collide ----------------------------------------------------------------

TWO_KEYS = rule("""  sequence:
    by: [container.id, container.name]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
""")


def _named(kind: str, t: float, cid: str, name: str | None, eid: str | None = None) -> dict[str, Any]:
    e = ev(kind, t, container=cid, eid=eid)
    e["container"]["name"] = name
    return e


def test_composite_keys_do_not_collide() -> None:
    assert run(TWO_KEYS, [_named("a", 1, "a|b", "c"), _named("b", 2, "a", "b|c")]) == []
    assert run(TWO_KEYS, [_named("a", 1, "a\\", "|c"), _named("b", 2, "a\\|", "c")]) == []
    out = run(TWO_KEYS, [_named("a", 1, "a|b", "c"), _named("b", 2, "a|b", "c")])
    assert [a["group_key"] for a in out] == ["a\\|b|c"]


def test_keys_without_separators_read_as_before_so_alert_ids_stay() -> None:
    out = run(TWO_KEYS, [_named("a", 1, "c1", "web", eid="X"), _named("b", 2, "c1", "web")])
    assert [a["group_key"] for a in out] == ["c1|web"]
    assert out[0]["alert_id"] == alert_id("seq", "c1|web", "X")


def test_a_missing_key_value_never_joins() -> None:
    assert run(TWO_KEYS, [_named("a", 1, "c1", None), _named("b", 2, "c1", None)]) == []
    assert run(TWO_KEYS, [_named("a", 1, "c1", None), _named("b", 2, "c1", "")]) == []
    # an empty string is a value: it joins
    assert len(run(TWO_KEYS, [_named("a", 1, "c1", ""), _named("b", 2, "c1", "")])) == 1


def test_a_missing_per_step_key_never_joins() -> None:
    text = rule("""  sequence:
    by: [container.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
        by: [file.path]
      - condition: event.kind = b
        by: [process.executable]
""")
    no_file = ev("a", 1)
    b = ev("b", 2)
    b["process"]["executable"] = None
    assert run(text, [no_file, b]) == []
    assert len(run(text, [ev("a", 1, file={"path": "/x"}), ev("b", 2, executable="/x")])) == 1


def test_a_missing_group_by_value_is_not_counted_in_a_window() -> None:
    text = HEAD.format(rid="thr") + """  threshold:
    group-by: [container.name]
    timespan: 10s
    count: {gte: 3}
"""
    assert run(text, [_named("open", t, "c1", None) for t in (1, 2, 3)]) == []
    assert len(run(text, [_named("open", t, "c1", "web") for t in (1, 2, 3)])) == 1
