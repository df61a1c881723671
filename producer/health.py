"""The producer.health heartbeat: what a downstream gap detector needs to tell
"no events happened" from "events were lost, and which ones".

Counters are cumulative since start (a lost heartbeat loses nothing); lost seq
ranges are merged and sorted so the health processor can name each range once.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["HealthReporter", "merge_ranges"]


def merge_ranges(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping or adjacent ranges joined."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


class HealthReporter:
    def __init__(self, host_id: str, boot_id: str, started_ns: int) -> None:
        self.host_id = host_id
        self.boot_id = boot_id
        self.started_ns = started_ns

    def record(self, last_seq: int, events_by_kind: dict[str, int], drops_by_cause: dict[str, int],
               publisher_stats: dict[str, Any], lost_ranges: list[tuple[int, int]],
               probes: list[str], config_change: str | None = None) -> dict[str, Any]:
        """One producer_health record; publisher drops are added to ``drops_by_cause``."""
        drops = {k: int(v) for k, v in drops_by_cause.items()}
        for cause, stat in (("spool_full", "dropped_spool_full"), ("too_large", "dropped_too_large")):
            n = int(publisher_stats.get(stat, 0))
            if n:
                drops[cause] = drops.get(cause, 0) + n
        return {
            "host_id": self.host_id,
            "boot_id": self.boot_id,
            "ts_ns": time.time_ns(),
            "started_ns": self.started_ns,
            "last_seq": int(last_seq),
            "events_by_kind": {k: int(v) for k, v in events_by_kind.items()},
            "drops_by_cause": drops,
            "spool_bytes": int(publisher_stats.get("spool_bytes", 0)),
            "spool_messages": int(publisher_stats.get("spool_messages", 0)),
            "lost_ranges": [{"first": f, "last": la} for f, la in merge_ranges(lost_ranges)],
            "probes": list(probes),
            "config_change": config_change,
        }
