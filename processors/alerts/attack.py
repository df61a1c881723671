"""MITRE ATT&CK (Enterprise 15.1) tactics and techniques by uid (``attack.json``): the one mapping
an alert's tags are rendered from, so a SIEM gets ``TA``/``T`` uids and names
from ATT&CK itself, never tag text, and a technique only under its own tactics."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["ATTACK_VERSION", "attacks", "tactic_uid"]

TECHNIQUE_TAG = re.compile(r"T\d{4}(\.\d{3})?")


@cache
def _data() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("attack.json").read_text())


ATTACK_VERSION: str = _data()["version"]


def _tag_of(name: str) -> str:
    return "mitre_" + re.sub(r"[^a-z]+", "_", name.lower()).strip("_")


@cache
def _tactics_by_tag() -> dict[str, str]:
    return {_tag_of(name): uid for uid, name in _data()["tactics"].items()}


def tactic_uid(tag: str) -> str | None:
    """``mitre_privilege_escalation`` -> ``TA0004``; None for a tag naming no tactic."""
    return _tactics_by_tag().get(tag)


def _tactic(uid: str) -> dict[str, str]:
    return {"uid": uid, "name": _data()["tactics"][uid]}


def _entity(uid: str) -> dict[str, str]:
    known = _data()["techniques"].get(uid)
    return {"uid": uid, "name": known["name"]} if known else {"uid": uid}


def attacks(tags: list[str]) -> list[dict[str, Any]]:
    """OCSF ``attack`` objects of a tag list: one per (technique, tactic) pair,
    the tactic among the technique's own, preferring those the tags name; a
    tactic tag no technique covers gives a tactic-only attack. A technique
    missing from the mapping keeps its uid and gets no tactic (no guessing)."""
    wanted = [u for u in (tactic_uid(t) for t in tags) if u]
    out: list[dict[str, Any]] = []
    covered: set[str] = set()
    for tag in tags:
        if not TECHNIQUE_TAG.fullmatch(tag):
            continue
        base = tag.split(".")[0]
        known = _data()["techniques"].get(base)
        own = known["tactics"] if known else []
        chosen = [u for u in own if u in wanted] or own
        attack: dict[str, Any] = {"technique": _entity(base), "version": ATTACK_VERSION}
        if tag != base:
            attack["sub_technique"] = _entity(tag)
        for uid in chosen or [None]:
            out.append({**attack, "tactic": _tactic(uid)} if uid else dict(attack))
            covered.update([uid] if uid else [])
    for uid in dict.fromkeys(wanted):
        if uid not in covered:
            out.append({"tactic": _tactic(uid), "version": ATTACK_VERSION})
    return out
