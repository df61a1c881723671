"""Loader diagnostics: codes, positions, carets, every error of a file at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from eunomia.processors.rules import MESSAGES, RuleLoadError, lint_files, load_text

GOOD = """\
- list: shells
  items: [sh, bash]
- macro: container
  condition: container.id != host
- rule: Shell
  desc: d
  condition: event.kind = exec and container and process.name in (shells)
  output: "shell %process.name"
  level: warning
  tags: [maturity_stable, mitre_execution, T1059]
"""


def diags(text: str, tmp_path: Path) -> list:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return lint_files([p])


def test_good_file_has_no_diagnostics(tmp_path: Path) -> None:
    assert diags(GOOD, tmp_path) == []
    assert load_text(GOOD).rules[0].id == "shell"


def test_condition_syntax_error_points_at_the_column(tmp_path: Path) -> None:
    text = GOOD.replace("process.name in (shells)", "process.name in (shells")
    [d] = diags(text, tmp_path)
    assert d.code == "E010"
    assert d.message == "condition syntax error: unexpected end of condition, expected ',', ')'"
    assert (d.line, d.column) == (7, 73)
    assert d.snippet.splitlines()[1].index("^") == 72
    assert d.format().startswith(f"{tmp_path / 'r.yaml'}:7:73: error E010: ")


def test_all_errors_of_a_file_are_reported(tmp_path: Path) -> None:
    text = GOOD.replace("process.name in", "process.nmae in").replace("and container", "and contaner") \
        .replace("level: warning", "level: loud") + "- rule: Other\n  desc: x\n  output: y\n  level: alert\n"
    got = [(d.code, d.message, d.line, d.column) for d in diags(text, tmp_path) if d.is_error]
    assert got == [
        ("E016", "invalid level 'loud' (use event, warning or alert)", 9, 10),
        ("E012", "undefined macro 'contaner'", 7, 36),
        ("E011", "unknown field 'process.nmae'", 7, 49),
        ("E004", "missing required key 'condition'", 11, 3),
    ]


def test_errors_inside_a_macro_point_into_the_macro(tmp_path: Path) -> None:
    text = GOOD.replace("container.id != host", "container.idd != host")
    [d] = [d for d in diags(text, tmp_path) if d.is_error]
    assert (d.code, d.message, d.line, d.column) == ("E011", "unknown field 'container.idd'", 4, 14)


def test_type_errors(tmp_path: Path) -> None:
    text = GOOD.replace("process.name in (shells)", "user.id startswith 0 and user.id = root")
    got = [(d.code, d.message) for d in diags(text, tmp_path) if d.is_error]
    assert got == [("E018", "operator 'startswith' does not apply to int field 'user.id'"),
                   ("E019", "value 'root' is not a number for field 'user.id'")]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    [d] = diags("- rule: [unclosed\n", tmp_path)
    assert d.code == "E001" and d.line == 2


def test_structure_errors(tmp_path: Path) -> None:
    assert [d.code for d in diags("rule: x\n", tmp_path)] == ["E002"]
    assert [d.code for d in diags("- foo: 1\n- 3\n", tmp_path)] == ["E003", "E003"]
    text = GOOD + "  colour: red\n"
    [d] = diags(text, tmp_path)
    assert (d.code, d.message, d.line) == ("E005", "unknown key 'colour'", 11)


def test_duplicates_and_bad_durations(tmp_path: Path) -> None:
    text = GOOD + GOOD + """\
- rule: Seq
  desc: d
  condition: container
  output: o
  level: alert
  tags: [maturity_stable, mitre_execution, T1059]
  sequence:
    by: [container.id]
    maxspan: soon
    steps:
      - condition: event.kind = a
      - condition: event.kind = b
"""
    got = [(d.code, d.message) for d in diags(text, tmp_path) if d.is_error]
    assert ("E014", "duplicate list 'shells'") in got
    assert ("E014", "duplicate macro 'container'") in got
    assert ("E014", "duplicate rule 'shell'") in got
    assert ("E015", "invalid duration 'soon' (use e.g. 500ms, 30s, 5m, 1h)") in got


def test_sequence_shape_errors(tmp_path: Path) -> None:
    text = GOOD.replace("  tags:", """  sequence:
    steps:
      - condition: event.kind = a
        missing: true
      - condition: event.kind = b
        by: [container.id]
  tags:""").replace("  condition: event.kind = exec and container and process.name in (shells)\n",
                      "  condition: container\n")
    codes = [d.code for d in diags(text, tmp_path)]
    assert "E021" in codes and "E022" in codes and "W003" in codes


def test_warnings_for_tags(tmp_path: Path) -> None:
    text = GOOD.replace("[maturity_stable, mitre_execution, T1059]", "[shell]")
    got = [(d.code, d.message) for d in diags(text, tmp_path)]
    assert got == [("W001", MESSAGES["W001"]), ("W002", MESSAGES["W002"])]
    assert load_text(text).warnings  # warnings do not stop loading


def test_count_condition_and_exceptions(tmp_path: Path) -> None:
    text = GOOD.replace("  tags:", """  exceptions:
    - name: ex
      fields: [process.name, user.id]
      comps: [in, between]
      values: [[[a], 1]]
  threshold:
    timespan: 10s
    count: {many: 3}
  tags:""")
    got = [(d.code, d.message) for d in diags(text, tmp_path) if d.is_error]
    assert ("E025", "invalid comparison 'between' in exception (use one of =, !=, in, startswith, "
                    "endswith, contains, glob)") in got
    assert ("E020", MESSAGES["E020"]) in got


def test_load_error_carries_all_diagnostics() -> None:
    with pytest.raises(RuleLoadError) as ei:
        load_text(GOOD.replace("level: warning", "level: x").replace("process.name in", "nope.x in"))
    assert len([d for d in ei.value.diagnostics if d.is_error]) == 2
    assert "(and 1 more)" in str(ei.value)


def test_unreadable_file(tmp_path: Path) -> None:
    [d] = lint_files([tmp_path / "missing.yaml"])
    assert d.code == "E026"


def test_exceptions_exclude_matching_events() -> None:
    from tests.support.enriched_events import ev

    text = GOOD.replace("  tags:", """  exceptions:
    - name: by_parent
      fields: [process.parent.name, container.image_name]
      comps: [in, startswith]
      values:
        - [[runc, conmon], nginx]
  tags:""")
    from eunomia.processors.rules import Engine

    engine = Engine(load_text(text), lateness_ns=0)
    assert engine.process(ev("exec", 1, name="sh", pname="runc", image="nginx:1")) == []
    assert len(engine.process(ev("exec", 2, name="sh", pname="runc", image="redis"))) == 1
    assert len(engine.process(ev("exec", 3, name="sh", pname="init", image="nginx:1"))) == 1
