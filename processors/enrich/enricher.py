"""The enrichment engine, free of Kafka and faust, so the worker, offline replay
and tests share it: raw events, syscall counts and container records in,
``(host_id/container_id, enriched_event)`` out, so one container's events stay
in order on one partition.

Events of a cgroup with no container record yet are held until it arrives or
the host's event time passes ``grace_ns``, then go out with what the cgroup path
gives and ``metadata_complete`` false.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from eunomia.processors.enrich.container_join import ContainerDirectory, container_key, identify
from eunomia.processors.enrich.ecs import CATEGORY, payload_fields
from eunomia.processors.enrich.lineage import MULTICALL_COMMS, CachedMapping, Lineage
from eunomia.schemas.kinds import HEARTBEAT
from eunomia.signals import signal_name
from eunomia.syscall_names import SyscallTableError, resolve

__all__ = ["HEARTBEAT", "Enricher", "Output", "heartbeat_event"]

Output = tuple[str, dict[str, Any]]
MAX_HELD_PER_CGROUP = 10_000

log = logging.getLogger(__name__)


class Enricher:
    """Stateful join of raw events with containers and process lineage.

    Held events live in ``pending`` (the caller may back it with a changelog); once a
    cgroup has held events, later ones queue behind them, so order per container is
    kept. ``max_wall_hold_s`` releases the holds of a host that went quiet."""

    def __init__(self, procs: MutableMapping[str, Any] | None = None,
                 pending: MutableMapping[str, Any] | None = None, *,
                 directory: ContainerDirectory | None = None,
                 grace_ns: int = 5 * 10**9, exit_grace_ns: int = 120 * 10**9,
                 max_wall_hold_s: float = 30.0, max_procs: int | None = None) -> None:
        self.lineage = Lineage(procs if procs is not None else {}, exit_grace_ns=exit_grace_ns,
                               max_procs=max_procs)
        self.pending: MutableMapping[str, Any] = pending if pending is not None else {}
        self.directory = directory or ContainerDirectory()
        self.grace_ns = grace_ns
        self.max_wall_hold_s = max_wall_hold_s
        self.watermark: dict[str, int] = {}
        self._held: dict[str, dict[str, float]] = {}  # host -> key -> wall time first held
        self.partition: int | None = None  # input partition of the record being applied
        # called with a hold's partition before it is deleted (changelog-backed pending)
        self.set_partition: Callable[[int], None] | None = None
        self.stats = {"events": 0, "syscalls": 0, "held": 0, "released_incomplete": 0}
        self._unnamed_arches: set[str] = set()  # architectures libseccomp cannot name (logged once)

    # -- inputs --------------------------------------------------------------------
    def on_raw_event(self, ev: dict[str, Any]) -> list[Output]:
        self.stats["events"] += 1
        host = ev["host_id"]
        kind = ev["kind"]
        if kind == HEARTBEAT:
            return self._heartbeat(ev)
        pl = ev.get("payload")
        if pl is not None:
            if kind == "exec" or kind == "execveat":
                if "filename" in pl:
                    self.lineage.on_exec(host, ev, pl)
            elif kind == "fork":
                self.lineage.on_fork(host, ev, pl)
            elif kind == "exit":
                self.lineage.on_exit(host, ev, pl)
            elif kind == "proc_snapshot":
                self.lineage.on_snapshot(host, ev, pl)
        return self._route("e", ev)

    def on_syscalls(self, rec: dict[str, Any]) -> list[Output]:
        self.stats["syscalls"] += 1
        return self._route("s", rec)

    def on_container(self, key: str, record: dict[str, Any] | None) -> list[Output]:
        """A containers-topic message; releases events held for it."""
        self.directory.apply(key, record)
        return self.release_key(key) if record is not None and key in self.pending else []

    def tick(self, now: float | None = None) -> list[Output]:
        """Release holds whose container arrived meanwhile or that waited too long (wall)."""
        now = time.monotonic() if now is None else now
        out: list[Output] = []
        for keys in list(self._held.values()):
            for key, since in list(keys.items()):
                if self.directory.get(key) is not None or now - since >= self.max_wall_hold_s:
                    out += self.release_key(key)
        return out

    # -- join ------------------------------------------------------------------------
    def _route(self, topic: str, rec: dict[str, Any]) -> list[Output]:
        host = rec["host_id"]
        ts = rec["ts_ns"]
        if ts > self.watermark.get(host, 0):
            self.watermark[host] = ts
            self.lineage.expire(host, ts)
            out = self._release_expired(host, ts) if self._held.get(host) else []
        else:
            out = []
        key = container_key(host, rec["cgroup_id"])
        if self._held.get(host) and key in self._held[host]:
            self._hold(key, topic, rec)
            if self.directory.get(key) is not None:
                out += self.release_key(key)
            return out
        ident = identify(self.directory, key, rec["cgroup_id"], rec.get("cgroup_path"), final=False)
        if ident is None:
            self._hold(key, topic, rec)
            return out
        out.append(self._build(topic, rec, ident))
        return out

    def _heartbeat(self, ev: dict[str, Any]) -> list[Output]:
        """A producer's heartbeat: its events up to this time were sent. It is passed
        on only while none of the host's events wait for a container record (it
        would make them late); the next one says the same later."""
        host, ts = ev["host_id"], ev["ts_ns"]
        out: list[Output] = []
        if ts > self.watermark.get(host, 0):
            self.watermark[host] = ts
            self.lineage.expire(host, ts)
            if self._held.get(host):
                out = self._release_expired(host, ts)
        if self._held.get(host):
            return out
        out.append((f"{host}/host", heartbeat_event(ev)))
        return out

    def _hold(self, key: str, topic: str, rec: dict[str, Any]) -> None:
        self.stats["held"] += 1
        entry = self.pending.get(key)
        if entry is None:
            entry = {"p": self.partition, "since": rec["ts_ns"], "events": []}
        entry = {**entry, "events": [*entry["events"], [topic, rec]]}
        self.pending[key] = entry
        self._held.setdefault(rec["host_id"], {}).setdefault(key, time.monotonic())

    def _release_expired(self, host: str, wm: int) -> list[Output]:
        out: list[Output] = []
        for key in list(self._held.get(host, {})):
            entry = self.pending.get(key)
            if entry is None or entry["since"] + self.grace_ns <= wm \
                    or len(entry["events"]) >= MAX_HELD_PER_CGROUP:
                out += self.release_key(key)
        return out

    def release_key(self, key: str) -> list[Output]:
        """Emit every event held for ``key``, in arrival order, and forget them."""
        entry = self.pending.get(key)
        host = key.rsplit("/", 1)[0]
        held = self._held.get(host)
        if held is not None:
            held.pop(key, None)
            if not held:
                del self._held[host]
        if entry is None:
            return []
        if self.set_partition is not None and entry.get("p") is not None:
            self.set_partition(entry["p"])  # the changelog partition the hold was written to
        del self.pending[key]
        out: list[Output] = []
        for topic, rec in entry["events"]:
            ident = identify(self.directory, key, rec["cgroup_id"], rec.get("cgroup_path"), final=True)
            assert ident is not None
            if not ident[0]["metadata_complete"]:
                self.stats["released_incomplete"] += 1
            out.append(self._build(topic, rec, ident))
        return out

    def reload_pending(self) -> None:
        """Re-learn held keys from ``pending`` (after a restart or rebalance)."""
        self._held.clear()
        if isinstance(self.lineage.procs, CachedMapping):
            self.lineage.procs.clear_cache()
        if isinstance(self.pending, CachedMapping):
            self.pending.clear_cache()
        now = time.monotonic()
        for key in list(self.pending):
            self._held.setdefault(key.rsplit("/", 1)[0], {})[key] = now
        self.lineage.rebuild_expiry()

    # -- output --------------------------------------------------------------------
    def _build(self, topic: str, rec: dict[str, Any], ident: Any) -> Output:
        container, orch, cid = ident
        host = rec["host_id"]
        ts = rec["ts_ns"]
        lin = self.lineage
        exe, args, start = lin.process_fields(rec, ts)
        name = rec["comm"]
        if name in MULTICALL_COMMS:  # a busybox applet: named as its argv says
            name = lin.name_at(rec["exec_id"], ts) or name
        if topic == "e":
            ppid = rec["ppid"]
            parent, ancestors, complete = lin.parents(rec["parent_exec_id"], ts, ppid)
            kind = rec["kind"]
        else:
            proc = lin.procs.get(rec["exec_id"])
            ppid = 0
            parent, ancestors, complete = lin.parents(proc["par"] if proc else "", ts, 0)
            if parent is not None:
                ppid = parent["pid"]
            kind = "syscall_counts"
        out: dict[str, Any] = {
            "event": {"id": f"{host}:{rec['boot_id']}:{topic}{rec['seq']}", "kind": kind,
                      "category": CATEGORY.get(kind, "privilege"), "outcome": "unknown",
                      "ts_ns": ts, "seq": rec["seq"], "result": 0},
            "host": {"id": host, "boot_id": rec["boot_id"]},
            "process": {"pid": rec["pid"], "tid": rec.get("tid", rec["pid"]), "name": name,
                        "executable": exe, "args": args, "exec_id": rec["exec_id"],
                        "start_ns": start, "ppid": ppid, "exit_code": None, "parent": parent,
                        "ancestors": ancestors,
                        "lineage_complete": complete and exe is not None,
                        "exe_origin": "", "stdio_socket": "", "vpid": 0},
            "container": container,
            "orchestrator": orch,
        }
        if topic == "e":
            out["user"] = {"id": rec["uid"], "group_id": rec["gid"]}
            out["ns"] = rec["ns"]
            payload_fields(kind, rec.get("payload"), out)
            if kind == "signal" and out.get("syscall") is not None:  # real-time signals by name too
                out["syscall"]["signal"] = signal_name(rec["payload"]["sig"])
        else:
            out["user"] = {"id": -1, "group_id": -1}  # not in syscall-count records
            arch = rec.get("arch") or "x86_64"
            out["event"]["outcome"] = "success"
            out["syscalls"] = {
                "arch": arch, "interval_ns": rec["interval_ns"],
                "counts": self._named_counts(arch, rec["counts"]),
                "fileio": rec.get("fileio") or []}
        return f"{host}/{cid}", out

    def _named_counts(self, arch: str, counts: list[dict[str, int]]) -> list[dict[str, Any]]:
        """Counts with libseccomp's syscall names, the table runc enforces profiles with.
        An architecture it cannot name leaves the names null (the numbers still say
        everything) and is logged once."""
        try:
            names = [resolve(arch, c["nr"]) for c in counts]
        except SyscallTableError as exc:
            if arch not in self._unnamed_arches:
                self._unnamed_arches.add(arch)
                log.warning("syscall names stay null for arch %r: %s", arch, exc)
            names = [None] * len(counts)
        return [{"nr": c["nr"], "name": name, "count": c["count"]}
                for c, name in zip(counts, names, strict=True)]

    # -- state for offline replay ----------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        return {"procs": {k: self.lineage.procs.get(k) for k in self.lineage.procs},
                "pending": {k: self.pending.get(k) for k in self.pending},
                "containers": dict(self.directory.live), "watermark": dict(self.watermark)}

    def import_state(self, state: dict[str, Any]) -> None:
        for k, v in state.get("procs", {}).items():
            self.lineage.procs[k] = v
        for k, v in state.get("pending", {}).items():
            self.pending[k] = v
        for k, v in state.get("containers", {}).items():
            self.directory.apply(k, v)
        self.watermark.update(state.get("watermark", {}))
        self.reload_pending()


def heartbeat_event(ev: dict[str, Any]) -> dict[str, Any]:
    """The enriched form of a heartbeat: only its host and time mean anything."""
    host = ev["host_id"]
    return {
        "event": {"id": f"{host}:{ev['boot_id']}:e{ev['seq']}", "kind": HEARTBEAT, "category": "host",
                  "outcome": "success", "ts_ns": ev["ts_ns"], "seq": ev["seq"], "result": 0},
        "host": {"id": host, "boot_id": ev["boot_id"]},
        "process": {"pid": 0, "tid": 0, "name": "", "executable": None, "args": [], "exec_id": "",
                    "start_ns": 0, "ppid": 0, "exit_code": None, "parent": None, "ancestors": [],
                    "lineage_complete": False},
        "user": {"id": -1, "group_id": -1},
        "container": {"id": "host", "name": None, "image_name": None, "image_id": None, "runtime": None,
                      "labels": {}, "cgroup_id": 0, "cgroup_path": None, "metadata_complete": True},
        "orchestrator": None,
    }
