"""``eunomia worker seccomp``: enriched syscall counts -> per-image allowlists on
the compacted ``seccomp.profiles`` topic, and violation alerts once published.

Two agents, so state is partition-safe with any number of workers:
``seccomp-route`` reads ``enriched.events`` (keyed by host/container), keeps
the syscall_counts records of containers with an image, resolves numbers to
names and re-keys them by image onto the internal ``seccomp.by-image`` topic;
``seccomp-fold`` owns the ``images`` table (key image) on that topic's
partitions. A timer publishes debounced profiles; it only touches images of
partitions this worker actively owns and writes their changelog partition
explicitly (``PartitionedTable``), as an agent would.

Both agents work in batches and wait, before a batch is acknowledged, until its
output (re-keyed observations, alerts, profiles) and its table changes are on
the broker: a worker killed after a commit then loses nothing it had learned.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from typing import Any

import faust
from faust.types import TP

from eunomia.config import Settings
from eunomia.processors.alerts import alert_id
from eunomia.processors.runtime.app import create_app, flush_tables, partitioned_table
from eunomia.processors.runtime.dead_letters import DeadLetters
from eunomia.processors.runtime.offset_guard import OffsetGuard
from eunomia.processors.runtime.output import WorkerOutput
from eunomia.processors.seccomp.profile import (
    Observation,
    fold,
    mark_published,
    new_state,
    profile_record,
    publish_due,
    violations,
)
from eunomia.schemas import AvroCodec, CodecError
from eunomia.syscall_names import SyscallTableError, resolve, scmp_arches

__all__ = ["RULE_ID", "build_app", "observation", "violation_alert"]

log = logging.getLogger(__name__)
RULE_ID = "seccomp-violation"
SEVERITY_HIGH = 4  # OCSF


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


def _obs_json(o: Observation) -> bytes:
    return json.dumps({"image": o.image, "image_id": o.image_id, "host": o.host,
                       "container": o.container, "arch": o.arch, "ts_ns": o.ts_ns,
                       "event_id": o.event_id, "names": o.names, "unresolved": o.unresolved,
                       "pid": o.pid, "process": o.process, "exec_id": o.exec_id}).encode()


def _obs_from_json(data: bytes) -> Observation:
    d = json.loads(data)
    return Observation(**{**d, "names": tuple(d["names"]), "unresolved": tuple(d["unresolved"])})


def violation_alert(state: dict[str, Any], obs: Observation, names: list[str]) -> dict[str, Any]:
    """An ``alert`` record: ``obs`` used ``names`` outside the published profile."""
    group = f"{obs.image}|{obs.container}"
    calls = ",".join(names)
    return {
        "alert_id": alert_id(RULE_ID, group, obs.event_id), "rule_id": RULE_ID,
        "rule_name": "Syscall outside the image's seccomp profile",
        "description": "A container used a syscall its image's learned seccomp allowlist does not "
                       "contain: new behaviour, or an attack.",
        "level": "alert", "severity_id": SEVERITY_HIGH,
        "tags": ["seccomp", "mitre_execution"],
        "message": f"{obs.process} (pid {obs.pid}) in container {obs.container} of {obs.image} "
                   f"used {calls}, outside seccomp profile v{state['version']}",
        "group_key": group, "first_seen_ns": obs.ts_ns, "last_seen_ns": obs.ts_ns,
        "event_count": 1,
        "events": [{"id": obs.event_id, "kind": "syscall_counts", "ts_ns": obs.ts_ns,
                    "summary": f"syscall_counts {obs.process} {calls}"}],
        "host_id": obs.host, "container_id": obs.container, "container_name": None,
        "image_name": obs.image, "pod_name": None, "pod_namespace": None,
        "process_pid": obs.pid, "process_name": obs.process, "process_executable": None,
        "process_exec_id": obs.exec_id or None,
        "fields": {"syscalls": calls, "profile_version": str(state["version"])},
    }


def build_app(settings: Settings, *, store: str = "memory://", web_port: int | None = None,
              datadir: Any = None, debounce_s: float = 5.0, max_wait_s: float = 60.0,
              learn_after_publish: bool = True, tick_s: float = 0.5, batch: int = 500) -> faust.App:
    """The seccomp app. ``learn_after_publish=False`` freezes an image's set at its
    first profile: later syscalls only alert."""
    app = create_app("seccomp", settings, store=store, web_port=web_port, datadir=datadir)
    guard = OffsetGuard.install(app)  # input faust's stream skipped is read again
    codec = AvroCodec()
    images = partitioned_table(app, "images", help="learned syscall state per image")
    by_image_name = settings.topic("seccomp.by-image")
    source = app.topic(settings.topic("enriched.events"), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    by_image = app.topic(by_image_name, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw", internal=True,
                         partitions=settings.topics.partitions)
    out = WorkerOutput(settings)
    dlq_name = settings.topic("dlq")
    dlq = DeadLetters("seccomp", lambda k, v, h: out.produce(dlq_name, k, v, h), codec)
    profiles_name, alerts_name = settings.topic("seccomp.profiles"), settings.topic("alerts")
    debounce_ns, max_wait_ns = int(debounce_s * 1e9), int(max_wait_s * 1e9)

    def publish(state: dict[str, Any], now: int) -> None:
        version = mark_published(state, now)
        rec = profile_record(state, time.time_ns())
        out.produce(profiles_name, state["image"].encode(), codec.encode("seccomp_profile", rec))
        log.info("seccomp profile %s v%d: %d syscalls", state["image"], version, len(state["published"]))

    @app.agent(source, name="seccomp-route")
    async def route(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch, within=0.05):
            for ev in await guard.admit(events):
                msg = ev.message
                try:
                    obs = observation(codec.decode(msg.value, expect="enriched_event"))
                except (CodecError, SyscallTableError, KeyError, TypeError, ValueError) as exc:
                    dlq.send(msg.topic, msg.partition, msg.offset, msg.key, msg.value, exc)
                    continue
                if obs is not None:
                    await by_image.send(key=obs.image.encode(), value=_obs_json(obs))
            await out.flush()
            await flush_tables(app)  # re-keyed observations on the broker before the batch is acked

    @app.agent(by_image, name="seccomp-fold")
    async def fold_images(stream: faust.StreamT) -> None:
        async for events in stream.take_events(batch, within=0.05):
            for ev in await guard.admit(events):
                obs = _obs_from_json(ev.message.value)
                now = time.time_ns()
                state = images.get(obs.image) or new_state(obs.image, obs.image_id, obs.arch)
                bad = violations(state, obs)
                if bad:
                    rec = violation_alert(state, obs, bad)
                    out.produce(alerts_name, rec["alert_id"].encode(), codec.encode("alert", rec))
                if state["version"] and not learn_after_publish:
                    obs = replace(obs, names=tuple(n for n in obs.names if n in state["syscalls"]))
                fold(state, obs, now)
                if publish_due(state, now, debounce_ns, max_wait_ns):
                    publish(state, now)
                state["partition"] = ev.message.partition
                images.write_partition = ev.message.partition
                images[obs.image] = state
            # alerts and profiles first, then the state that says they were sent: a
            # kill in between repeats them (identical ids) instead of losing them
            await out.flush()
            await flush_tables(app)

    @app.timer(tick_s)
    async def publish_quiet() -> None:
        actives = app.assignor.assigned_actives()
        now = time.time_ns()
        for image, state in list(images.items()):
            p = state.get("partition")
            if p is None or TP(by_image_name, p) not in actives:
                continue
            if publish_due(state, now, debounce_ns, max_wait_ns):
                publish(state, now)
                images.write_partition = p
                images[image] = state
        await out.flush()

    @app.on_before_shutdown.connect
    async def _flush(sender: Any, **kw: Any) -> None:
        out.producer.flush(30)

    app.eunomia = {"images": images, "dlq": dlq}  # type: ignore[attr-defined]
    return app
