"""Every default rule against the scenario corpus (tests/data/scenarios),
replayed offline as ``eunomia replay --rules`` does: each rule fires on its
attack recording, not on its near miss, and no benign recording raises
anything. The table of what fired where is printed (``pytest -s`` or ``-rA``).
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from eunomia.processors.replay.expectations import compare, load_expectations
from eunomia.processors.replay.offline import replay_offline
from eunomia.processors.rules import load_files, pack_files

CORPUS = Path(__file__).resolve().parents[2] / "data" / "scenarios"
PACK = load_files(pack_files())
RULES = sorted(r.id for r in PACK.rules)


@cache
def fired(name: str) -> Counter[str]:
    return Counter(a["rule_id"] for a in replay_offline(CORPUS / name, PACK).alerts)


def captured() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("captured-*.avro"))


def test_the_corpus_covers_every_pack_rule() -> None:
    missing = [r for r in RULES if not (CORPUS / f"gen-{r}-attack.avro").exists()]
    assert not missing, f"no attack recording for {missing}: run tests/data/scenarios/generate.py"
    assert captured(), "no captured recordings"


@pytest.mark.parametrize("rule", RULES)
def test_rule_fires_on_its_attack_and_not_on_its_near_miss(rule: str) -> None:
    assert fired(f"gen-{rule}-attack.avro")[rule] >= 1
    assert fired(f"gen-{rule}-nearmiss.avro")[rule] == 0


@pytest.mark.parametrize("name", captured())
def test_captured_recordings_give_their_expected_alerts(name: str) -> None:
    expect = load_expectations(CORPUS / name.replace(".avro", ".expect.yaml"))
    alerts = replay_offline(CORPUS / name, PACK).alerts
    assert compare(expect, alerts) == []


def test_benign_recordings_are_silent() -> None:
    benign = [n for n in captured() if "benign" in n]
    assert benign
    for name in benign:
        assert not fired(name), f"{name}: {dict(fired(name))}"


def test_print_the_rule_by_scenario_table() -> None:
    """The table the issue asks for; it fails if any cell breaks the rules above."""
    table = Table("rule", "attack (generated)", "near miss (generated)",
                  *[n.removeprefix("captured-").removesuffix(".avro") + " (captured)"
                    for n in captured()],
                  title="alerts per rule and scenario (offline replay of tests/data/scenarios)")
    bad = []
    for rule in RULES:
        a, m = fired(f"gen-{rule}-attack.avro")[rule], fired(f"gen-{rule}-nearmiss.avro")[rule]
        cells = [str(fired(n)[rule] or "-") for n in captured()]
        table.add_row(rule, str(a) if a else "[red]0[/]", str(m) if not m else f"[red]{m}[/]", *cells)
        if not a or m or any(fired(n)[rule] for n in captured() if "benign" in n):
            bad.append(rule)
    Console(width=160).print(table)
    assert not bad
