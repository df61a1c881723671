"""Evidence that did not arrive, as alerts: seq gaps and producer drops.

Two sources, both keyed by host: the producers' heartbeats (drops by cause, and
seq ranges the producer knows it lost) and the seq numbers on raw.events (a gap
the producer could not know about). Either names the lost range in a
``producer-gap`` alert whose id is (rule, host, first lost seq), so the same
range seen by both is one alert to a SIEM; growing drops raise ``producer-drops``.
A seq lower than the last one seen is a producer restart, not a gap. Pure: the
health worker keeps the tracker's state in its tables.
"""

from __future__ import annotations

from typing import Any

from eunomia.processors.alerts import alert_record

__all__ = ["DROP_RULE", "GAP_RULE", "GapTracker", "drop_alert", "gap_alert"]

GAP_RULE, DROP_RULE = "producer-gap", "producer-drops"
TAGS = ["pipeline", "integrity"]


def gap_alert(host: str, boot: str, first: int, last: int, ts_ns: int, source: str) -> dict[str, Any]:
    n = last - first + 1
    return alert_record(
        rule_id=GAP_RULE, rule_name="Producer lost events",
        description="Events of this host never reached Kafka: the evidence has a hole.",
        level="alert", tags=TAGS, group_key=host, first_event_id=f"{boot}:{first}",
        first_seen_ns=ts_ns, last_seen_ns=ts_ns, event_count=n, events=[], host_id=host,
        message=f"producer {host} lost raw.events seq {first}-{last} ({n} events, seen by {source})",
        fields={"boot_id": boot, "first_seq": str(first), "last_seq": str(last), "source": source})


def drop_alert(host: str, boot: str, cause: str, total: int, delta: int, ts_ns: int) -> dict[str, Any]:
    return alert_record(
        rule_id=DROP_RULE, rule_name="Producer dropped events",
        description="The producer could not capture or keep some events (counted, not silent).",
        level="warning", tags=TAGS, group_key=f"{host}|{cause}", first_event_id=f"{boot}:{total}",
        first_seen_ns=ts_ns, last_seen_ns=ts_ns, event_count=delta, events=[], host_id=host,
        message=f"producer {host} dropped {delta} events ({cause}; {total} since start)",
        fields={"boot_id": boot, "cause": cause, "total": str(total)})


class GapTracker:
    """Pure state: last seq per (host, boot), ranges and drop totals already reported."""

    def __init__(self, state: Any = None) -> None:
        self.state: Any = state if state is not None else {}

    def on_seq(self, host: str, boot: str, seq: int, ts_ns: int) -> list[dict[str, Any]]:
        key = f"seq|{host}|{boot}"
        last = self.state.get(key)
        self.state[key] = seq
        if last is None or seq <= last or seq == last + 1:
            return []
        return self._report(host, boot, last + 1, seq - 1, ts_ns, "raw.events seq")

    def on_health(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        host, boot, ts = rec["host_id"], rec["boot_id"], rec["ts_ns"]
        out: list[dict[str, Any]] = []
        for r in rec.get("lost_ranges") or []:
            out += self._report(host, boot, r["first"], r["last"], ts, "producer.health")
        for cause, total in (rec.get("drops_by_cause") or {}).items():
            key = f"drops|{host}|{boot}|{cause}"
            before = self.state.get(key) or 0
            if total > before:
                self.state[key] = total
                out.append(drop_alert(host, boot, cause, total, total - before, ts))
        return out

    def _report(self, host: str, boot: str, first: int, last: int, ts: int, source: str
                ) -> list[dict[str, Any]]:
        """Name each lost seq once. A heartbeat's range can grow after it was reported:
        a heartbeat fits in a full spool where the next raw event does not, so it
        carries (a, b) while b+1.. are still being dropped, and the next heartbeat
        merges them into (a, c). Only the part not named yet, (b+1, c), is new."""
        start = first
        while True:
            done = self.state.get(f"gap|{host}|{boot}|{start}")
            if done is None:
                break
            if done >= last:
                return []
            start = done + 1
        self.state[f"gap|{host}|{boot}|{first}"] = last
        self.state[f"gap|{host}|{boot}|{start}"] = last
        return [gap_alert(host, boot, start, last, ts, source)]
