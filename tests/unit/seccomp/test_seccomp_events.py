"""Enriched events to observations, and violation alerts that fit the schema."""

from __future__ import annotations

from typing import Any

from eunomia.processors.seccomp.observation import RULE_ID, observation, violation_alert
from eunomia.processors.seccomp.profile import fold, mark_published, new_state, violations
from eunomia.schemas import AvroCodec


def event(kind: str = "syscall_counts", image: str | None = "img:1", nrs=(0, 83, 99999)) -> dict[str, Any]:
    return {"event": {"id": "h:b:s:7", "kind": kind, "category": "syscalls", "ts_ns": 5, "seq": 7},
            "host": {"id": "h", "boot_id": "b"},
            "process": {"pid": 42, "name": "sh", "exec_id": "h:b:42:1"},
            "container": {"id": "c1", "image_name": image, "image_id": "sha256:ab"},
            "syscalls": {"arch": "x86_64", "interval_ns": 1,
                         "counts": [{"nr": n, "name": None, "count": 1} for n in nrs]}}


def test_numbers_resolve_and_unknown_ones_are_kept_apart():
    obs = observation(event())
    assert obs is not None
    assert obs.names == ("mkdir", "read") and obs.unresolved == (99999,)
    assert (obs.image, obs.host, obs.container, obs.pid) == ("img:1", "h", "c1", 42)


def test_only_container_syscall_counts_count():
    assert observation(event(kind="exec")) is None
    ev = event(image=None)
    ev["container"]["image_id"] = None
    assert observation(ev) is None  # host process: no image to learn for


def test_violation_alert_is_deterministic_and_fits_the_schema():
    st = new_state("img:1", None, "x86_64")
    fold(st, observation(event(nrs=(0,))), 1)
    mark_published(st, 2)
    st["frozen"] = True
    obs = observation(event())
    bad = violations(st, obs)
    assert bad == ["mkdir"]
    a, b = violation_alert(st, obs, bad), violation_alert(st, obs, bad)
    assert a["alert_id"] == b["alert_id"] and a["rule_id"] == RULE_ID
    back = AvroCodec().decode(AvroCodec().encode("alert", a), expect="alert")
    assert back["fields"] == {"syscalls": "mkdir", "profile_version": "1"}
