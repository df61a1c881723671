"""Every alert type renders a Detection Finding valid against the OCSF schema
of the version it declares: zero errors, zero deprecations, over the demo's and
the scenario corpus's findings and the seccomp and health alerts. The validator
is tested on known-bad findings first: a validator that passes everything
proves nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from eunomia.processors.alerts.attack import attacks, tactic_uid
from eunomia.processors.alerts.ocsf import ocsf_json, to_ocsf
from eunomia.processors.health.gaps import drop_alert, gap_alert
from eunomia.processors.replay.offline import replay_offline
from eunomia.processors.rules import load_files, pack_files
from eunomia.processors.seccomp.observation import RULE_ID as SECCOMP_RULE
from eunomia.processors.seccomp.observation import violation_alert
from eunomia.processors.seccomp.profile import Observation, new_state
from tests.requirements import require
from tests.support.ocsf_validator import OcsfSchema, schema_path

SCENARIOS = Path(__file__).resolve().parents[2] / "data" / "scenarios"


@pytest.fixture(scope="module")
def schema() -> OcsfSchema:
    path = schema_path()
    require(path is not None, "needs the compiled OCSF 1.3.0 schema in ../shared/thirdparty/ocsf")
    assert path is not None
    return OcsfSchema.load(path)


@pytest.fixture(scope="module")
def corpus_alerts() -> list[dict[str, Any]]:
    ruleset = load_files(pack_files())
    alerts: list[dict[str, Any]] = []
    for rec in sorted(SCENARIOS.glob("*.avro")):
        alerts += replay_offline(rec, ruleset).alerts
    return alerts


def seccomp_alert() -> dict[str, Any]:
    obs = Observation(image="docker.io/library/nginx:1.27", image_id="sha256:ab12", host="node-1",
                      container="c0ffee", arch="x86_64", ts_ns=1_732_000_000_123_456_789,
                      event_id="e-1", names=("ptrace",), pid=41, process="nginx", exec_id="x-41")
    state = new_state(obs.image, obs.image_id, obs.arch)
    state["version"] = 2
    return violation_alert(state, obs, ["ptrace"])


def health_alerts() -> list[dict[str, Any]]:
    ts = 1_732_000_000_987_654_321
    return [gap_alert("node-1", "b1", 10, 19, ts, "seq"),
            drop_alert("node-1", "b1", "ringbuf_full", 30, 5, ts)]


def problems(schema: OcsfSchema, finding: dict[str, Any]) -> list[str]:
    return [str(p) for p in schema.validate(finding)]


def test_the_validator_finds_what_was_wrong_with_the_old_findings(schema: OcsfSchema) -> None:
    good = to_ocsf(seccomp_alert())
    assert problems(schema, good) == []
    bad = copy.deepcopy(good)
    del bad["metadata"]["profiles"]
    ev = bad["evidences"][0]
    ev["process"]["file"] = {"path": "/usr/sbin/nginx"}
    ev["container"]["image"] = {"name": "nginx"}
    ev["data"]["ts_ns"] = 1_732_000_000_123_456_789
    bad["finding_info"]["related_events"] = [{"uid": "e-1", "type": "syscall_counts"}]
    bad["finding_info"]["attacks"] = [{"technique": {"uid": "T1059"}, "tactic": None}]
    bad["severity_id"] = 42
    bad["time"] = "yesterday"
    bad["bogus"] = 1
    found = problems(schema, bad)
    for expected in (
        "error: device: needs profile host in metadata.profiles",
        "error: evidences[0].process.file.name: required, missing",
        "error: evidences[0].process.file.type_id: required, missing",
        "error: evidences[0].container.image.uid: required, missing",
        "deprecated: finding_info.related_events[0].type: Use type_name attribute instead.",
        "error: finding_info.attacks[0].tactic: null value (omit the attribute instead)",
        "error: evidences[0].data.ts_ns: 1732000000123456789 is not exact in double-based JSON readers",
        "error: severity_id: 42 not in enum",
        "error: time: 'yesterday' is not a timestamp_t",
        "error: bogus: unknown attribute",
    ):
        assert any(f.startswith(expected) for f in found), (expected, found)
    no_class = {"class_uid": 9999}
    assert problems(schema, no_class) == ["error: class_uid: unknown class 9999"]
    missing = copy.deepcopy(good)
    del missing["finding_info"]["title"]
    assert problems(schema, missing) == ["error: finding_info.title: required, missing"]


def test_every_alert_type_is_valid_ocsf(schema: OcsfSchema, corpus_alerts: list[dict[str, Any]]) -> None:
    every = [*corpus_alerts, seccomp_alert(), *health_alerts()]
    rules = {a["rule_id"] for a in corpus_alerts}
    assert len(rules) >= 10, rules  # the corpus covers most of the pack
    assert {"producer-gap", "producer-drops", SECCOMP_RULE} <= {a["rule_id"] for a in every}
    for a in every:
        finding = json.loads(ocsf_json(a))
        assert problems(schema, finding) == [], a["rule_id"]
        assert finding["metadata"]["version"] == schema.version


def test_techniques_get_their_own_tactics_with_attack_uids() -> None:
    # a rule tagged with two tactics: each technique under the tactic it belongs to
    got = attacks(["mitre_execution", "mitre_command_and_control", "T1059.004", "T1071"])
    pairs = [(a["technique"]["uid"], a.get("sub_technique", {}).get("uid"), a["tactic"]["uid"])
             for a in got]
    assert pairs == [("T1059", "T1059.004", "TA0002"), ("T1071", None, "TA0011")]
    assert got[0]["technique"]["name"] == "Command and Scripting Interpreter"
    assert got[0]["sub_technique"]["name"] == "Unix Shell"
    assert got[1]["tactic"]["name"] == "Command and Control"
    # no tactic tag: the technique's own tactics, never null
    [alone] = attacks(["T1611"])
    assert alone["tactic"] == {"uid": "TA0004", "name": "Privilege Escalation"}
    # a tactic tag no technique covers: a tactic-only attack
    assert attacks(["seccomp", "mitre_execution"]) == [
        {"tactic": {"uid": "TA0002", "name": "Execution"}, "version": attacks(["T1611"])[0]["version"]}]
    # an unknown technique keeps its uid, with no invented tactic
    [unknown] = attacks(["T9999"])
    assert unknown["technique"] == {"uid": "T9999"} and "tactic" not in unknown
    assert tactic_uid("mitre_privilege_escalation") == "TA0004" and tactic_uid("maturity_stable") is None


def test_every_pack_tag_maps_to_attack() -> None:
    """The mapping knows every tactic and technique the default pack names."""
    for rule in load_files(pack_files()).rules:
        for tag in rule.tags:
            if tag.startswith("mitre_"):
                assert tactic_uid(tag), (rule.id, tag)
        for a in attacks(list(rule.tags)):
            if "technique" in a:
                assert "name" in a["technique"] and "tactic" in a, (rule.id, a)
