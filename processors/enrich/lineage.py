"""Process lineage: the live processes of each host keyed by exec_id, never pid.

State lives in a mapping the caller provides (a dict, or a changelog-backed faust
Table behind ``CachedMapping``) and is written only when it changes. A record
keeps each image a process ran with its start time, so an event gets the image
valid at its own time and re-processing after a crash gives the same output.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Any

__all__ = ["MAX_ANCESTORS", "MAX_ARGV_BYTES", "MULTICALL_COMMS", "CachedMapping", "Lineage", "bounded_argv",
           "program_name"]

MAX_ANCESTORS = 8
MAX_IMAGES = 4
# argv kept per image: a lineage record is a changelog message (a 900 KB argv in
# two images crashed faust's producer) and every descendant's event repeats it
MAX_ARGV_BYTES = 32 * 1024
_MISSING: Any = object()
_MULTICALL = ("busybox", "toybox")
# comms that name a multi-call binary or its re-exec through /proc/self/exe
MULTICALL_COMMS = frozenset(("exe", *_MULTICALL))


def program_name(comm: str, filename: str, argv: list[str]) -> str:
    """The program a process runs, as rules name it: its comm, except for a
    multi-call binary (busybox, toybox), which runs the applet that argv[0] (or
    argv[1] after the binary's own name) names; a re-exec through /proc/self/exe
    has the comm "exe" whatever the applet."""
    if not argv or (comm not in MULTICALL_COMMS and filename.rsplit("/", 1)[-1] not in _MULTICALL):
        return comm
    name = argv[0].rsplit("/", 1)[-1]
    if name in _MULTICALL and len(argv) > 1:
        name = argv[1].rsplit("/", 1)[-1]
    return name[:15] or comm


class CachedMapping(MutableMapping[str, Any]):
    """A dict in front of a slower mapping (a faust Table on RocksDB).

    Reads hit the dict, misses are remembered, writes go to both. Call
    ``clear_cache`` when the backing store may have changed behind our back
    (a rebalance moved partitions).
    """

    def __init__(self, backing: MutableMapping[str, Any]) -> None:
        self.backing = backing
        self._cache: dict[str, Any] = {}

    def clear_cache(self) -> None:
        self._cache.clear()

    def get(self, key: str, default: Any = None) -> Any:
        v = self._cache.get(key, _MISSING)
        if v is _MISSING:
            v = self.backing.get(key)
            if len(self._cache) > 500_000:
                self._cache.clear()
            self._cache[key] = v
        return default if v is None else v

    def __getitem__(self, key: str) -> Any:
        v = self.get(key)
        if v is None:
            raise KeyError(key)
        return v

    def __setitem__(self, key: str, value: Any) -> None:
        self._cache[key] = value
        self.backing[key] = value

    def __delitem__(self, key: str) -> None:
        self._cache[key] = None
        if key in self.backing:
            del self.backing[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.backing.keys()))

    def __len__(self) -> int:
        return len(self.backing)


def bounded_argv(argv: list[str], limit: int = MAX_ARGV_BYTES) -> list[str]:
    """``argv`` cut to ``limit`` bytes, a marker saying how much was cut."""
    total = sum(len(a.encode()) for a in argv)
    if total <= limit:
        return list(argv)
    out: list[str] = []
    used = 0
    for a in argv:
        b = a.encode()
        if used + len(b) > limit:
            out.append(b[: limit - used].decode(errors="ignore"))
            break
        out.append(a)
        used += len(b)
    out.append(f"...[eunomia: {total - limit} bytes of argv cut, over {limit}]")
    return out


def _image_at(rec: dict[str, Any], ts: int) -> list[Any]:
    """The [ts, name, executable, args] a process ran at event time ``ts``."""
    images = rec["img"]
    if not images:
        return [0, "", None, []]
    best = images[0]
    for img in images[1:]:
        if img[0] <= ts:
            best = img
        else:
            break
    return best


class Lineage:
    """Live processes of the hosts this worker owns, and their ancestry. An exited
    process stays ``exit_grace_ns`` of event time, so late events of a dying process
    still find it. With ``max_procs``, the least recently seen process is evicted
    past that many (``evicted`` counts them): a process that never exits must not
    hold memory forever; a later event of it gets an incomplete lineage."""

    def __init__(self, procs: MutableMapping[str, Any], *,
                 exit_grace_ns: int = 120 * 10**9, max_procs: int | None = None) -> None:
        self.procs = procs
        self.exit_grace_ns = exit_grace_ns
        self.max_procs = max_procs
        self.evicted = 0
        self._recent: OrderedDict[str, None] = OrderedDict()  # exec_ids, least recently seen first
        self._expiry: dict[str, list[tuple[int, str]]] = {}  # host -> heap (exit ts, exec_id)
        self._version = 0
        self._parent_cache: dict[str, tuple[int, dict[str, Any] | None, list[dict[str, Any]], bool]] = {}

    # -- state changes -------------------------------------------------------------
    def _put(self, exec_id: str, rec: dict[str, Any]) -> None:
        self.procs[exec_id] = rec
        self._version += 1
        self._touch(exec_id)

    @property
    def tracked(self) -> int:
        """Processes under the ``max_procs`` bound (0 without one)."""
        return len(self._recent)

    def _touch(self, exec_id: str) -> None:
        """``exec_id`` was seen now; evict the least recently seen past ``max_procs``."""
        if self.max_procs is None:
            return
        recent = self._recent
        recent[exec_id] = None
        recent.move_to_end(exec_id)
        while len(recent) > self.max_procs:
            old, _ = recent.popitem(last=False)
            if old in self.procs:
                del self.procs[old]
                self.evicted += 1
                self._version += 1

    def on_exec(self, host: str, ev: dict[str, Any], pl: dict[str, Any]) -> None:
        if pl.get("retval", 0) != 0:
            return  # a failed exec leaves the old image running
        eid = ev["exec_id"]
        rec = self.procs.get(eid)
        img = [ev["ts_ns"], program_name(ev["comm"], pl["filename"], pl["argv"]), pl["filename"],
               bounded_argv(pl["argv"])]
        if rec is None:
            rec = {"h": host, "pid": ev["pid"], "par": ev["parent_exec_id"],
                   "start": pl.get("start_time_ns", 0), "img": [img], "exit": None}
        else:
            if img in rec["img"]:
                return  # re-processed after a restart: nothing changes
            rec = dict(rec)
            rec["img"] = [*[i for i in rec["img"] if i[0] <= img[0]], img][-MAX_IMAGES:]
        self._put(eid, rec)

    def on_fork(self, host: str, ev: dict[str, Any], pl: dict[str, Any]) -> None:
        child = pl["child_exec_id"]
        if not child or child == ev["exec_id"] or child in self.procs:
            return  # a new thread, or seen already
        parent = self.procs.get(ev["exec_id"])
        img = list(_image_at(parent, ev["ts_ns"])) if parent else [0, ev["comm"], None, []]
        img[0] = 0  # the child runs its parent's image from its birth on
        self._put(child, {"h": host, "pid": pl["child_pid"], "par": ev["exec_id"],
                          "start": pl.get("child_start_time_ns", 0), "img": [img], "exit": None})

    def on_exit(self, host: str, ev: dict[str, Any], pl: dict[str, Any]) -> None:
        eid = ev["exec_id"]
        rec = self.procs.get(eid)
        if rec is None:
            rec = {"h": host, "pid": ev["pid"], "par": ev["parent_exec_id"], "start": 0,
                   "img": [[0, ev["comm"], None, []]], "exit": None}
        if rec["exit"] is not None:
            return
        rec = dict(rec)
        rec["exit"] = ev["ts_ns"]
        rec["code"] = pl.get("exit_code", 0)
        self._put(eid, rec)
        heapq.heappush(self._expiry.setdefault(host, []), (ev["ts_ns"], eid))

    def on_snapshot(self, host: str, ev: dict[str, Any], pl: dict[str, Any]) -> None:
        eid = ev["exec_id"]
        if eid in self.procs:
            return  # probes saw it already: they are newer than the scan
        self._put(eid, {"h": host, "pid": ev["pid"], "par": ev["parent_exec_id"],
                        "start": pl.get("start_time_ns", 0),
                        "img": [[0, ev["comm"], pl.get("exe"), bounded_argv(pl.get("argv") or [])]],
                        "exit": None})

    def expire(self, host: str, watermark_ns: int) -> int:
        """Delete processes of ``host`` that exited more than the grace ago."""
        heap = self._expiry.get(host)
        n = 0
        limit = watermark_ns - self.exit_grace_ns
        while heap and heap[0][0] < limit:
            ts, eid = heapq.heappop(heap)
            rec = self.procs.get(eid)
            if rec is not None and rec.get("exit") == ts:
                del self.procs[eid]
                self._recent.pop(eid, None)
                self._version += 1
                n += 1
        return n

    def rebuild_expiry(self) -> None:
        """Re-learn pending expiries from the state (after a restart or rebalance)."""
        self._expiry.clear()
        self._parent_cache.clear()
        self._recent.clear()
        self._version += 1
        for eid in self.procs:
            if self.max_procs is not None:
                self._recent[eid] = None
            rec = self.procs.get(eid)
            if rec and rec.get("exit") is not None:
                heapq.heappush(self._expiry.setdefault(rec["h"], []), (rec["exit"], eid))

    # -- lookups -------------------------------------------------------------------
    def process_fields(self, ev: dict[str, Any], ts: int) -> tuple[str | None, list[str], int]:
        """(executable, args, start_ns) of the event's own process."""
        rec = self.procs.get(ev["exec_id"])
        if rec is None:
            return None, [], 0
        self._touch(ev["exec_id"])
        img = _image_at(rec, ts)
        return img[2], img[3], rec["start"]

    def name_at(self, exec_id: str, ts: int) -> str | None:
        """The program name (``program_name``) a process ran at ``ts``, if known."""
        rec = self.procs.get(exec_id)
        return _image_at(rec, ts)[1] or None if rec is not None else None

    def known(self, exec_id: str) -> bool:
        return exec_id in self.procs

    def parents(self, parent_exec_id: str, ts: int, ppid: int
                ) -> tuple[dict[str, Any] | None, list[dict[str, Any]], bool]:
        """(parent, ancestors parent first, complete) of a process."""
        if not parent_exec_id:
            return None, [], True
        hit = self._parent_cache.get(parent_exec_id)
        if hit is not None and hit[0] == self._version:
            return hit[1], hit[2], hit[3]
        chain: list[dict[str, Any]] = []
        complete = True
        ts_free = True  # every image choice in the chain is independent of ts
        eid = parent_exec_id
        seen = set()
        while eid and len(chain) < MAX_ANCESTORS and eid not in seen:
            seen.add(eid)
            rec = self.procs.get(eid)
            if rec is None:
                complete = False
                if not chain:
                    chain.append({"pid": ppid, "tid": ppid, "name": "", "executable": None,
                                  "args": [], "exec_id": eid, "start_ns": 0})
                break
            if len(rec["img"]) > 1:
                ts_free = False
            img = _image_at(rec, ts)
            chain.append({"pid": rec["pid"], "tid": rec["pid"], "name": img[1],
                          "executable": img[2], "args": img[3], "exec_id": eid,
                          "start_ns": rec["start"]})
            eid = rec["par"]
        parent = chain[0] if chain else None
        if ts_free:
            if len(self._parent_cache) > 100_000:
                self._parent_cache.clear()
            self._parent_cache[parent_exec_id] = (self._version, parent, chain, complete)
        return parent, chain, complete
