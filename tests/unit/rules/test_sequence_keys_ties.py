"""Sequence semantics of issue 24: join keys that cannot collide."""

from __future__ import annotations

from typing import Any

from eunomia.processors.rules import alert_id
from tests.unit.rules.fixtures import ev, run

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
