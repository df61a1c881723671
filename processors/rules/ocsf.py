"""OCSF Detection Finding (class_uid 2004) rendering of an alert, a pure
function so the worker, replay and tests produce identical JSON."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ocsf_json", "to_ocsf"]

PRODUCT = {"name": "Eunomia Stream", "vendor_name": "Eunomia", "version": "0.1.0"}
SEVERITY = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}


def to_ocsf(alert: dict[str, Any]) -> dict[str, Any]:
    """Detection Finding: category 2 (Findings), activity 1 (Create)."""
    mitre = [t for t in alert.get("tags", []) if t.startswith("T") and t[1:2].isdigit()]
    tactics = [t for t in alert.get("tags", []) if t.startswith("mitre_")]
    container = {k: v for k, v in {
        "uid": alert.get("container_id"), "name": alert.get("container_name"),
        "image": {"name": alert.get("image_name")} if alert.get("image_name") else None,
    }.items() if v is not None}
    process = {k: v for k, v in {
        "pid": alert.get("process_pid"), "name": alert.get("process_name"),
        "file": {"path": alert["process_executable"]} if alert.get("process_executable") else None,
        "uid": alert.get("process_exec_id"),
    }.items() if v is not None}
    sev = int(alert["severity_id"])
    return {
        "class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2,
        "category_name": "Findings", "activity_id": 1, "activity_name": "Create",
        "type_uid": 200401, "severity_id": sev, "severity": SEVERITY.get(sev, "Other"),
        "status_id": 1, "time": alert["last_seen_ns"] // 1_000_000,
        "message": alert["message"],
        "metadata": {"product": PRODUCT, "version": "1.3.0", "uid": alert["alert_id"],
                     "labels": [f"level:{alert['level']}"]},
        "finding_info": {
            "uid": alert["alert_id"], "title": alert["rule_name"], "desc": alert.get("description", ""),
            "types": alert.get("tags", []),
            "first_seen_time": alert["first_seen_ns"] // 1_000_000,
            "last_seen_time": alert["last_seen_ns"] // 1_000_000,
            "analytic": {"uid": alert["rule_id"], "name": alert["rule_name"], "type_id": 1, "type": "Rule"},
            "attacks": [{"technique": {"uid": t}, "tactic": {"name": tactics[0][6:]} if tactics else None}
                        for t in mitre],
            "related_events": [{"uid": e["id"], "type": e["kind"]} for e in alert.get("events", [])],
        },
        "evidences": [
            {k: v for k, v in {"container": container or None, "process": process or None,
                               "data": {"event_id": e["id"], "kind": e["kind"], "summary": e["summary"],
                                        "ts_ns": e["ts_ns"]}}.items() if v is not None}
            for e in alert.get("events", [])
        ],
        "device": {"hostname": alert.get("host_id", ""), "type_id": 0},
        "count": alert.get("event_count", 1),
        "unmapped": {"group_key": alert.get("group_key", ""), "fields": alert.get("fields", {})},
    }


def ocsf_json(alert: dict[str, Any]) -> bytes:
    return json.dumps(to_ocsf(alert), sort_keys=True, separators=(",", ":")).encode()
