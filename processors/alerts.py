"""What every processor's alert shares: the deterministic id and the severity of
each level, so rules, seccomp and health alerts dedupe and rank alike."""

from __future__ import annotations

import hashlib

__all__ = ["LEVEL_SEVERITY", "alert_id"]

# Eunomia levels -> OCSF severity_id (1 Informational, 3 Medium, 4 High)
LEVEL_SEVERITY = {"event": 1, "warning": 3, "alert": 4}


def alert_id(rule_id: str, group_key: str, first_event_id: str) -> str:
    """A hash of (rule, group key, first contributing event): a re-processed
    stream yields the same ids, so a SIEM can dedupe."""
    return hashlib.sha256(f"{rule_id}\x00{group_key}\x00{first_event_id}".encode()).hexdigest()[:32]
