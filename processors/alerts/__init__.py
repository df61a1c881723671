"""The one builder of ``alert`` records (schemas/alert.avsc) for every processor:
rules, seccomp and health alerts share the deterministic id, the severity of
each level and the layout, so a SIEM dedupes and ranks them alike."""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["LEVEL_SEVERITY", "alert_id", "alert_record"]

# Eunomia levels -> OCSF severity_id (1 Informational, 3 Medium, 4 High)
LEVEL_SEVERITY = {"event": 1, "warning": 3, "alert": 4}

# the who-and-where of an alert; what a processor does not know stays None
_CONTEXT: dict[str, Any] = {
    "container_id": None, "container_name": None, "image_name": None, "pod_name": None,
    "pod_namespace": None, "process_pid": None, "process_name": None,
    "process_executable": None, "process_exec_id": None,
}


def alert_id(rule_id: str, group_key: str, first_event_id: str) -> str:
    """A hash of (rule, group key, first contributing event): a re-processed
    stream yields the same ids, so a SIEM can dedupe."""
    return hashlib.sha256(f"{rule_id}\x00{group_key}\x00{first_event_id}".encode()).hexdigest()[:32]


def alert_record(*, rule_id: str, rule_name: str, description: str, level: str, tags: list[str],
                 group_key: str, first_event_id: str, first_seen_ns: int, last_seen_ns: int,
                 event_count: int, events: list[dict[str, Any]], host_id: str, message: str,
                 fields: dict[str, str], severity_id: int | None = None,
                 **context: Any) -> dict[str, Any]:
    """An alert record. ``first_event_id`` names the first contributing event for
    the id; ``context`` holds the container, pod and process fields known;
    ``severity_id`` defaults to the level's (a Falco rule brings its priority's)."""
    unknown = context.keys() - _CONTEXT.keys()
    if unknown:
        raise TypeError(f"not an alert field: {', '.join(sorted(unknown))}")
    return {
        "alert_id": alert_id(rule_id, group_key, first_event_id), "rule_id": rule_id,
        "rule_name": rule_name, "description": description, "level": level,
        "severity_id": LEVEL_SEVERITY[level] if severity_id is None else severity_id,
        "tags": list(tags), "group_key": group_key, "first_seen_ns": first_seen_ns,
        "last_seen_ns": last_seen_ns, "event_count": event_count, "events": events,
        "host_id": host_id, **_CONTEXT, **context, "message": message, "fields": fields,
    }
