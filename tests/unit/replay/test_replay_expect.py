"""Expectations files: validation with positions, and the alert diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from eunomia.processors.replay.expectations import (
    DiffRow,
    ExpectationError,
    compare,
    load_expectations,
    render_diff,
)
from eunomia.processors.replay.to_kafka import ReplayError, parse_speed


def _alert(rule: str, key: str) -> dict[str, str]:
    return {"rule_id": rule, "group_key": key}


def _load(tmp_path: Path, text: str):
    p = tmp_path / "expect.yaml"
    p.write_text(text)
    return load_expectations(p)


def test_matching_alerts_give_no_diff(tmp_path: Path) -> None:
    exp = _load(tmp_path, """
alerts:
  - rule: reverse_shell
    group_key: "h1/*"
    count: 2
  - rule: shadow_read
""")
    alerts = [_alert("reverse_shell", "h1/abc"), _alert("reverse_shell", "h1/def"),
              _alert("shadow_read", "x")]
    assert compare(exp, alerts) == []


def test_missing_extra_and_count_rows(tmp_path: Path) -> None:
    exp = _load(tmp_path, """
alerts:
  - {rule: a, count: 1}
  - {rule: b, group_key: k1, count: 2}
""")
    alerts = [_alert("b", "k1"), _alert("c", "z"), _alert("c", "z")]
    diff = compare(exp, alerts)
    assert diff == [DiffRow("a", "*", 1, 0), DiffRow("b", "k1", 2, 1), DiffRow("c", "z", 0, 2)]
    assert [d.status for d in diff] == ["missing", "count differs", "unexpected"]
    console = Console(width=120, record=True)
    console.print(render_diff(diff, Path("e.yaml")))
    text = console.export_text()
    assert "unexpected" in text and "missing" in text and "e.yaml" in text


def test_silent_and_non_exhaustive(tmp_path: Path) -> None:
    silent = _load(tmp_path, "alerts: []\n")
    assert compare(silent, []) == []
    assert compare(silent, [_alert("x", "k")]) == [DiffRow("x", "k", 0, 1)]
    loose = _load(tmp_path, "alerts: [{rule: x}]\nexhaustive: false\n")
    assert compare(loose, [_alert("x", "k"), _alert("y", "k")]) == []


@pytest.mark.parametrize(("text", "where", "msg"), [
    ("alerts:\n  - {rule: a, count: -1}\n", ":2:5:", "count must be an integer"),
    ("alerts:\n  - {rule: a, colour: red}\n", ":2:5:", "unknown key"),
    ("alerts:\n  - count: 1\n", ":2:5:", "needs at least 'rule'"),
    ("alerts: {rule: a}\n", ":1:9:", "must be a list"),
    ("rules: []\n", ":1:1:", "unknown key"),
    ("description: x\n", ":1:1:", "missing 'alerts'"),
    ("alerts: [\n", ":2:1:", "invalid YAML"),
    ("alerts: []\nexhaustive: maybe\n", ":2:13:", "true or false"),
])
def test_bad_files_name_line_and_column(tmp_path: Path, text: str, where: str, msg: str) -> None:
    with pytest.raises(ExpectationError) as err:
        _load(tmp_path, text)
    assert where in str(err.value) and msg in str(err.value)


def test_speed() -> None:
    assert parse_speed("max") is None
    assert parse_speed("1x") == 1.0
    assert parse_speed("12.5x") == 12.5
    for bad in ("0x", "fast", "x", "-2x", "2"):
        with pytest.raises(ReplayError, match="--speed"):
            parse_speed(bad)
