"""OCSF 1.3.0 Detection Finding (class 2004) of an alert record, for every alert
type (rules, seccomp, health): a pure function, so workers, replay and tests
write identical JSON, and the ``host`` profile is declared because ``device``
is one of its attributes. Nanosecond times go out as strings: a 19-digit
integer loses precision in JSON readers that parse numbers as doubles."""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from eunomia.processors.alerts.attack import attacks

__all__ = ["OCSF_VERSION", "ocsf_json", "to_ocsf"]

OCSF_VERSION = "1.3.0"
PRODUCT = {"name": "Eunomia Stream", "vendor_name": "Eunomia", "version": "0.1.0"}
SEVERITY = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical", 6: "Fatal"}
HOSTNAME = re.compile(r"^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])\.)*"
                      r"([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9\-]*[A-Za-z0-9])$")
REGULAR_FILE = 1


def _present(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != {}}


def _container(alert: dict[str, Any]) -> dict[str, Any] | None:
    """``image.uid`` is required: the image reference stands in when the alert
    carries no image digest (alert records hold the image name only)."""
    image = alert.get("image_name")
    return _present({
        "uid": alert.get("container_id"), "name": alert.get("container_name"),
        "image": {"name": image, "uid": image} if image else None,
    }) or None


def _process(alert: dict[str, Any]) -> dict[str, Any] | None:
    path = alert.get("process_executable")
    process = _present({
        "pid": alert.get("process_pid"), "name": alert.get("process_name"),
        "uid": alert.get("process_exec_id"),
        "file": {"name": posixpath.basename(path) or path, "path": path, "type_id": REGULAR_FILE,
                 "type": "Regular File"} if path else None,
    })
    return process if ("pid" in process or "uid" in process) else None


def _device(host: str) -> dict[str, Any] | None:
    if not host:
        return None
    device: dict[str, Any] = {"uid": host, "name": host, "type_id": 0, "type": "Unknown"}
    if HOSTNAME.match(host):
        device["hostname"] = host
    return device


def _ms(ns: int) -> int:
    return ns // 1_000_000


def to_ocsf(alert: dict[str, Any]) -> dict[str, Any]:
    """Detection Finding: category 2 (Findings), activity 1 (Create), status New."""
    sev = int(alert["severity_id"])
    container, process = _container(alert), _process(alert)
    events = alert.get("events", [])
    finding = _present({
        "uid": alert["alert_id"], "title": alert["rule_name"], "desc": alert.get("description") or None,
        "types": list(alert.get("tags", [])),
        "first_seen_time": _ms(alert["first_seen_ns"]), "last_seen_time": _ms(alert["last_seen_ns"]),
        "analytic": {"uid": alert["rule_id"], "name": alert["rule_name"], "type_id": 1, "type": "Rule"},
        "attacks": attacks(list(alert.get("tags", []))) or None,
        "related_events": [{"uid": e["id"], "type_name": e["kind"]} for e in events] or None,
    })
    evidences = [_present({
        "container": container, "process": process,
        "data": {"event_id": e["id"], "kind": e["kind"], "summary": e.get("summary", ""),
                 "time": _ms(e["ts_ns"]), "ts_ns": str(e["ts_ns"])},
    }) for e in events]
    return _present({
        "class_uid": 2004, "class_name": "Detection Finding", "category_uid": 2,
        "category_name": "Findings", "activity_id": 1, "activity_name": "Create",
        "type_uid": 200401, "type_name": "Detection Finding: Create",
        "severity_id": sev, "severity": SEVERITY.get(sev, "Other"),
        "status_id": 1, "status": "New",
        "time": _ms(alert["last_seen_ns"]), "start_time": _ms(alert["first_seen_ns"]),
        "end_time": _ms(alert["last_seen_ns"]), "count": alert.get("event_count", 1),
        "message": alert["message"],
        "metadata": {"product": PRODUCT, "version": OCSF_VERSION, "uid": alert["alert_id"],
                     "profiles": ["host"], "labels": [f"level:{alert['level']}"]},
        "finding_info": finding,
        "evidences": evidences or None,
        "device": _device(alert.get("host_id", "")),
        "unmapped": {"group_key": alert.get("group_key", ""), "fields": alert.get("fields", {})},
    })


def ocsf_json(alert: dict[str, Any]) -> bytes:
    return json.dumps(to_ocsf(alert), sort_keys=True, separators=(",", ":")).encode()
