"""What the seccomp worker learns from an enriched event, and the alert it raises.

An ``Observation`` is the image-level fact of one syscall_counts record (names
resolved with libseccomp's table); it travels re-keyed by image between the
worker's two agents as JSON. A syscall outside an image's published profile is
a ``seccomp-violation`` alert. Pure: no Kafka, no faust.
"""

from __future__ import annotations

import json
from typing import Any

from eunomia.processors.alerts import alert_record
from eunomia.processors.seccomp.profile import Observation
from eunomia.syscall_names import resolve, scmp_arches

__all__ = ["RULE_ID", "decode_observation", "encode_observation", "observation", "violation_alert"]

RULE_ID = "seccomp-violation"


def observation(ev: dict[str, Any]) -> Observation | None:
    """The image-level facts of an enriched event; None unless it is a
    syscall_counts record of a container with a known image.

    An architecture no profile can name (unknown to libseccomp, or without OCI
    architecture names) raises ``SyscallTableError`` here, so the record is a
    dead letter instead of crashing the agent when its profile is published."""
    usage = ev.get("syscalls")
    c = ev["container"]
    image = c.get("image_name") or c.get("image_id")
    if ev["event"]["kind"] != "syscall_counts" or usage is None or not image:
        return None
    arch = usage["arch"] or "x86_64"
    scmp_arches(arch)
    names: list[str] = []
    unresolved: list[int] = []
    for cnt in usage["counts"]:
        name = resolve(arch, cnt["nr"])  # libseccomp's table, not the producer's guess
        if name is None:
            unresolved.append(cnt["nr"])
        else:
            names.append(name)
    p = ev["process"]
    return Observation(image=image, image_id=c.get("image_id"), host=ev["host"]["id"],
                       container=c["id"], arch=arch, ts_ns=ev["event"]["ts_ns"],
                       event_id=ev["event"]["id"], names=tuple(sorted(set(names))),
                       unresolved=tuple(sorted(set(unresolved))), pid=p["pid"],
                       process=p["name"], exec_id=p["exec_id"])


def encode_observation(o: Observation) -> bytes:
    return json.dumps({"image": o.image, "image_id": o.image_id, "host": o.host,
                       "container": o.container, "arch": o.arch, "ts_ns": o.ts_ns,
                       "event_id": o.event_id, "names": o.names, "unresolved": o.unresolved,
                       "pid": o.pid, "process": o.process, "exec_id": o.exec_id}).encode()


def decode_observation(data: bytes) -> Observation:
    d = json.loads(data)
    return Observation(**{**d, "names": tuple(d["names"]), "unresolved": tuple(d["unresolved"])})


def violation_alert(state: dict[str, Any], obs: Observation, names: list[str]) -> dict[str, Any]:
    """An ``alert`` record: ``obs`` used ``names`` outside the published profile."""
    group = f"{obs.image}|{obs.container}"
    calls = ",".join(names)
    return alert_record(
        rule_id=RULE_ID, rule_name="Syscall outside the image's seccomp profile",
        description="A container used a syscall its image's learned seccomp allowlist does not "
                    "contain: new behaviour, or an attack.",
        level="alert", tags=["seccomp", "mitre_execution"], group_key=group,
        first_event_id=obs.event_id, first_seen_ns=obs.ts_ns, last_seen_ns=obs.ts_ns, event_count=1,
        events=[{"id": obs.event_id, "kind": "syscall_counts", "ts_ns": obs.ts_ns,
                 "summary": f"syscall_counts {obs.process} {calls}"}],
        host_id=obs.host, container_id=obs.container, image_name=obs.image, process_pid=obs.pid,
        process_name=obs.process, process_exec_id=obs.exec_id or None,
        message=f"{obs.process} (pid {obs.pid}) in container {obs.container} of {obs.image} "
                f"used {calls}, outside seccomp profile v{state['version']}",
        fields={"syscalls": calls, "profile_version": str(state["version"])})
