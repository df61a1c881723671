"""Alert records (schemas/alert.avsc) from rule matches, built by the one
alert builder of ``processors/alerts.py``.

A ``Snap`` is what an alert needs of an event (context, rendered message), taken
when a step matches, so pending state never holds whole events.
"""

from __future__ import annotations

from typing import Any

from eunomia.processors.alerts import alert_id, alert_record
from eunomia.processors.rules.build import TEMPLATE_FIELD
from eunomia.processors.rules.fields import getter
from eunomia.processors.rules.model import Rule

__all__ = ["alert_id", "make_alert", "ref", "snap", "summary"]

Ref = list[Any]  # [event id, kind, ts_ns, summary]


def _fmt(v: Any) -> str:
    if v is None:
        return "<NA>"
    if isinstance(v, list):
        return ",".join(_fmt(x) for x in v)
    if isinstance(v, dict):
        return ",".join(f"{k}={x}" for k, x in sorted(v.items()))
    return str(v)


def summary(e: dict[str, Any]) -> str:
    ev = e.get("event") or {}
    p = e.get("process") or {}
    parts = [str(ev.get("kind", "?")), str(p.get("name", "?"))]
    f = e.get("file")
    if f:
        parts.append(f.get("path", ""))
    d = e.get("destination")
    if d:
        parts.append(f"{d.get('address')}:{d.get('port')}")
    s = e.get("syscall")
    if s:
        parts.append(s.get("name", ""))
    return " ".join(parts)[:200]


def ref(e: dict[str, Any]) -> Ref:
    ev = e["event"]
    return [ev["id"], ev["kind"], ev["ts_ns"], summary(e)]


def snap(rule: Rule, e: dict[str, Any]) -> dict[str, Any]:
    """The alert context of one event: who, where, and the rendered message."""
    p = e.get("process") or {}
    c = e.get("container") or {}
    o = e.get("orchestrator") or {}
    return {
        "host_id": (e.get("host") or {}).get("id", ""),
        "container_id": c.get("id"), "container_name": c.get("name"),
        "image_name": c.get("image_name"), "pod_name": o.get("pod_name"),
        "pod_namespace": o.get("namespace"), "process_pid": p.get("pid"),
        "process_name": p.get("name"), "process_executable": p.get("executable"),
        "process_exec_id": p.get("exec_id"),
        "message": TEMPLATE_FIELD.sub(lambda m: _fmt(getter(m.group(1))(e)), rule.output),
        "fields": {f: _fmt(getter(f)(e)) for f in rule.output_fields},
    }


def make_alert(rule: Rule, group_key: str, refs: list[Ref], count: int, sn: dict[str, Any],
               max_events: int) -> dict[str, Any]:
    """The alert of a match: its first and last event, at most ``max_events`` of them
    (the last always), and the context ``sn`` of the event that completed it."""
    first, last = refs[0], refs[-1]
    kept = refs if len(refs) <= max_events else [*refs[:max_events - 1], refs[-1]]
    return alert_record(
        rule_id=rule.id, rule_name=rule.name, description=rule.desc, level=rule.level,
        severity_id=rule.severity_id, tags=list(rule.tags), group_key=group_key,
        first_event_id=first[0], first_seen_ns=first[2], last_seen_ns=last[2], event_count=count,
        events=[{"id": r[0], "kind": r[1], "ts_ns": r[2], "summary": r[3]} for r in kept], **sn)
