"""Sequence semantics of issue 24: until with its own keys, ties in arrival
order (live and in replay), join keys that cannot collide, the default maxspan
as a setting, and rules loaded from Python data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eunomia.config import Settings
from eunomia.processors.replay.offline import replay_offline
from eunomia.processors.rules import (
    DEFAULT_SPAN_NS,
    ENGINE_KEY,
    Engine,
    RuleLoadError,
    alert_id,
    lint_files,
    load_data,
    load_text,
)
from tests.support.enriched_events import S, ev, parent, run
from tests.support.recordings import ENRICHED, write_stream

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


# -- ties: arrival order, live and in replay ------------------------------------------------------

A_THEN_B_BODY = """  sequence:
    by: [container.id]
    maxspan: 10s
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
"""
A_THEN_B = rule(A_THEN_B_BODY)


def _offsets(order: str) -> list[dict[str, Any]]:
    """Nine unrelated events (offsets 0-8), then A and B at one nanosecond as offsets
    9 and 10 (ids end in the offset, unpadded: "...r10" sorts before "...r9")."""
    events = [ev("open", 5 + i / 10, eid=f"h1:b1:r{i}") for i in range(9)]
    a, b = ev("a", 7, eid="h1:b1:r9"), ev("b", 7, eid="h1:b1:r10")
    if order == "ba":
        a, b = ev("b", 7, eid="h1:b1:r9"), ev("a", 7, eid="h1:b1:r10")
    return [*events, a, b]


@pytest.mark.parametrize("lateness", [0, 2, 30])
def test_equal_times_keep_arrival_order(lateness: float) -> None:
    out = run(A_THEN_B, _offsets("ab"), lateness=lateness, end=100)
    assert [[e["id"] for e in a["events"]] for a in out] == [["h1:b1:r9", "h1:b1:r10"]]
    assert run(A_THEN_B, _offsets("ba"), lateness=lateness, end=100) == []


def test_equal_times_keep_arrival_order_across_a_state_restore() -> None:
    """A worker that takes over a partition restores the reorder buffer from the
    changelog: the events it holds keep their arrival order."""
    rules = load_text(A_THEN_B)
    first = Engine(rules, lateness_ns=2 * S, track_dirty=True)
    for e in _offsets("ab"):
        assert first.process(e) == []
    saved = {k: first.export_state(*k) for k in first.take_dirty()}
    second = Engine(rules, lateness_ns=2 * S, track_dirty=True)
    for (rid, key), blob in saved.items():
        if blob is not None:
            second.import_state(rid, key, blob)
    assert json.loads(saved[(ENGINE_KEY, "")])["buf"][-1][1] == "h1:b1:r10"
    assert len(second.flush()) == 1


def test_equal_times_keep_arrival_order_in_offline_replay(tmp_path: Path) -> None:
    for order, expected in (("ab", 1), ("ba", 0)):
        path = tmp_path / f"{order}.avro"
        write_stream(path, [(ENRICHED, b"h1/c1", e, "enriched_event") for e in _offsets(order)])
        res = replay_offline(path, load_text(A_THEN_B))
        assert res.mode == "enriched" and res.events == 11
        assert len(res.alerts) == expected, order


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


# -- the default maxspan --------------------------------------------------------------------------

NO_MAXSPAN = rule("""  sequence:
    by: [container.id]
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
""")


def test_default_maxspan_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().rules.default_maxspan_ns == DEFAULT_SPAN_NS == 3600 * S
    monkeypatch.setenv("EUNOMIA_RULES__DEFAULT_MAXSPAN_S", "90")
    span = Settings().rules.default_maxspan_ns
    assert span == 90 * S
    events = [ev("a", 0), ev("b", 100)]
    assert len(run(NO_MAXSPAN, events)) == 1  # the engine's default: an hour
    assert run(NO_MAXSPAN, events, default_span_ns=span) == []
    assert len(run(NO_MAXSPAN, [ev("a", 0), ev("b", 90)], default_span_ns=span)) == 1
    monkeypatch.setenv("EUNOMIA_RULES__DEFAULT_MAXSPAN_S", "0")
    with pytest.raises(ValueError, match="default_maxspan_s"):
        Settings()


def test_lint_warns_on_a_sequence_without_maxspan(tmp_path: Path) -> None:
    f = tmp_path / "r.yaml"
    f.write_text(NO_MAXSPAN)
    warn = [d for d in lint_files([f]) if d.code == "W004"]
    assert len(warn) == 1 and "rules.default_maxspan_s" in warn[0].message
    f.write_text(A_THEN_B)
    assert [d for d in lint_files([f]) if d.code == "W004"] == []


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eunomia", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "250", **env})


def test_rules_list_and_replay_take_the_default_from_settings(tmp_path: Path) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(NO_MAXSPAN + rule(A_THEN_B_BODY, "timed"))
    r = _cli("rules", "list", "--no-pack", str(rules), EUNOMIA_RULES__DEFAULT_MAXSPAN_S="90")
    assert r.returncode == 0, r.stderr
    spans = {line.split("│")[1].strip(): line.split("│")[5].strip()
             for line in r.stdout.splitlines() if line.startswith("│")}
    assert spans == {"seq": "90s (default)", "timed": "10s"}
    rec = tmp_path / "rec.avro"
    write_stream(rec, [(ENRICHED, b"h1/c1", e, "enriched_event") for e in (ev("a", 0), ev("b", 100))])
    assert [a["rule_id"] for a in replay_offline(rec, [rules]).alerts] == ["seq"]
    r = _cli("replay", str(rec), "--rules", str(rules), "--format", "json",
             EUNOMIA_RULES__DEFAULT_MAXSPAN_S="90")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["alerts"] == []


# -- rules from Python data -----------------------------------------------------------------------

def _as_data() -> list[dict[str, Any]]:
    return [{"list": "letters", "items": ["a", "b"]},
            {"rule": "seq", "id": "seq", "desc": "d", "condition": "container.id != host",
             "output": "%process.name", "level": "alert",
             "tags": ["maturity_stable", "mitre_execution", "T1059"],
             "sequence": {"by": ["container.id"], "maxspan": "10s",
                          "steps": [{"condition": "event.kind = a"}, {"condition": "event.kind = b"}]}}]


def test_rules_load_from_a_list_of_dicts_as_from_yaml() -> None:
    data = load_data(_as_data())
    assert [r.fingerprint for r in data.rules] == [r.fingerprint for r in load_text(A_THEN_B).rules]
    one = load_data(_as_data()[1], name="generated")
    assert one.files == ["generated"]
    engine = Engine(one, lateness_ns=0)
    assert engine.process(ev("a", 1)) == [] and len(engine.process(ev("b", 2))) == 1


def test_rule_data_errors_are_diagnostics_or_one_line_type_errors() -> None:
    bad = _as_data()
    bad[1]["sequence"]["steps"][1]["condition"] = "event.kind = = b"
    with pytest.raises(RuleLoadError) as exc:
        load_data(bad, name="gen")
    d = exc.value.diagnostics[0]
    assert d.code == "E010" and d.file == "gen" and "event.kind = = b" in d.snippet
    for wrong in ("- rule: x", [["rule"]], 5):
        with pytest.raises(TypeError, match="must be a dict or a list of dicts"):
            load_data(wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not plain data"):
        load_data({"rule": "x", "desc": object()})
