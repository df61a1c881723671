"""Expectations of an offline replay and the diff against what fired.

An expectations file names, per rule and group key, how many alerts must fire::

    alerts:
      - rule: shell_in_container
        group_key: "host-1/*"   # optional fnmatch glob; default "*" (any group)
        count: 1
    exhaustive: true            # default: an alert nobody expected is a difference

``alerts: []`` says the recording must stay silent. Group keys may hold ids
that change on every re-recording (exec ids, container ids), hence the globs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from eunomia.errors import EunomiaError

__all__ = [
    "DiffRow",
    "Expectation",
    "ExpectationError",
    "Expectations",
    "compare",
    "load_expectations",
    "render_diff",
]


class ExpectationError(EunomiaError):
    """The expectations file is not valid."""


@dataclass(frozen=True)
class Expectation:
    rule: str
    group_key: str = "*"
    count: int = 1


@dataclass(frozen=True)
class Expectations:
    alerts: tuple[Expectation, ...]
    exhaustive: bool = True


@dataclass(frozen=True)
class DiffRow:
    rule: str
    group_key: str
    expected: int
    actual: int

    @property
    def status(self) -> str:
        if self.expected == 0:
            return "unexpected"
        return "missing" if self.actual == 0 else "count differs"


def _fail(path: Path, node: yaml.Node | None, msg: str) -> ExpectationError:
    if node is None:
        return ExpectationError(f"{path}: {msg}")
    m = node.start_mark
    return ExpectationError(f"{path}:{m.line + 1}:{m.column + 1}: {msg}")


def load_expectations(path: Path) -> Expectations:
    """Parse and validate; every error names file:line:column."""
    try:
        text = Path(path).read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except OSError as exc:
        raise ExpectationError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ExpectationError(f"{path}{where}: invalid YAML: {exc.problem}") from None
    if not isinstance(root, yaml.MappingNode):
        raise _fail(path, root, "expected a mapping with an 'alerts' list")
    top = {k.value: v for k, v in root.value}
    unknown = set(top) - {"alerts", "exhaustive", "description"}
    if unknown:
        raise _fail(path, root, f"unknown key(s): {', '.join(sorted(unknown))}")
    if "alerts" not in top:
        raise _fail(path, root, "missing 'alerts' (use 'alerts: []' for a silent recording)")
    data: dict[str, Any] = yaml.safe_load(text)
    alerts_node = top["alerts"]
    if not isinstance(alerts_node, yaml.SequenceNode):
        raise _fail(path, alerts_node, "'alerts' must be a list")
    out = []
    for node, item in zip(alerts_node.value, data["alerts"], strict=True):
        if not isinstance(item, dict) or "rule" not in item:
            raise _fail(path, node, "each alert needs at least 'rule'")
        extra = set(item) - {"rule", "group_key", "count"}
        if extra:
            raise _fail(path, node, f"unknown key(s): {', '.join(sorted(extra))}")
        count = item.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise _fail(path, node, f"count must be an integer >= 0, got {count!r}")
        out.append(Expectation(str(item["rule"]), str(item.get("group_key", "*")), count))
    exhaustive = data.get("exhaustive", True)
    if not isinstance(exhaustive, bool):
        raise _fail(path, top["exhaustive"], "exhaustive must be true or false")
    return Expectations(tuple(out), exhaustive)


def compare(expected: Expectations, alerts: list[dict[str, Any]]) -> list[DiffRow]:
    """Rows where the alerts differ from the expectations; empty when they agree."""
    actual = Counter((a["rule_id"], a["group_key"]) for a in alerts)
    covered: set[tuple[str, str]] = set()
    diff = []
    for e in expected.alerts:
        hits = [k for k in actual if k[0] == e.rule and fnmatchcase(k[1], e.group_key)]
        covered.update(hits)
        n = sum(actual[k] for k in hits)
        if n != e.count:
            diff.append(DiffRow(e.rule, e.group_key, e.count, n))
    if expected.exhaustive:
        diff.extend(DiffRow(rule, key, 0, n) for (rule, key), n in sorted(actual.items())
                    if (rule, key) not in covered)
    return diff


def render_diff(diff: list[DiffRow], path: Path | None = None) -> Table:
    table = Table("rule", "group key", "expected", "actual", "difference",
                  title=f"alerts differ from {path or 'the expectations'}")
    for row in diff:
        colour = "red" if row.status != "count differs" else "yellow"
        table.add_row(row.rule, row.group_key, str(row.expected), str(row.actual),
                      f"[{colour}]{row.status}[/]")
    return table
