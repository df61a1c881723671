"""The producer's main loop: probes in, Kafka out, and nothing else.

One thread owns the Publisher (it is not thread-safe): it decodes the ring
buffer, stamps each record with a per-topic seq (raw.events, raw.syscalls) so a
consumer sees any loss per (host_id, boot_id), and publishes it keyed by host_id;
each interval it drains the syscall counters and sends a heartbeat.
"""

from __future__ import annotations

import ctypes as ct
import logging
import os
import queue
import signal
import time
from collections import Counter
from typing import Any

from prometheus_client import REGISTRY

from eunomia.config import Settings, load_settings
from eunomia.endpoints import Endpoints
from eunomia.producer.cgroup_resolver import CgroupResolver
from eunomia.producer.decoder import DecodeError, Decoder, prefix_table
from eunomia.producer.health import HealthReporter
from eunomia.producer.identity import NS_PER_TICK, boot_id, exec_id, host_id
from eunomia.producer.loader import Probes, ProbeSpec
from eunomia.producer.metrics import ProducerMetrics
from eunomia.producer.publisher import Publisher
from eunomia.schemas import AvroCodec, CodecError
from eunomia.schemas.kinds import HEARTBEAT

__all__ = ["Agent"]

log = logging.getLogger(__name__)
ARCH = os.uname().machine


class Agent:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        ps = settings.producer
        self.host = host_id(settings.host_id)
        self.boot = boot_id()
        self.key = self.host.encode()
        self.codec = AvroCodec()
        self.metrics = ProducerMetrics(registry=REGISTRY)
        self.publisher = Publisher(settings, spool_dir=ps.spool_dir, spool_max_bytes=ps.spool_max_bytes,
                                   metrics=self.metrics)
        self.cgroups = CgroupResolver()
        self._observed: set[int] = set()  # cgroups already offered to the tracker
        self.containers: queue.SimpleQueue[tuple[str, dict | None]] = queue.SimpleQueue()
        self.tracker = None
        if ps.containers:
            from eunomia.producer.containers import ContainerTracker

            self.tracker = ContainerTracker(self.host, ps.docker_host or os.environ.get("DOCKER_HOST"),
                                            lambda k, r: self.containers.put((k, r)))
        self.decoder = Decoder(self.host, self.boot, path_max=ps.path_max, argv_size=ps.argv_size,
                               str_arg_len=ps.str_arg_len, cgroup_path=self._cgroup_path)
        self.spec = ProbeSpec(groups=tuple(ps.probes), self_tgid=os.getpid(), path_max=ps.path_max,
                              argv_size=ps.argv_size, str_arg_len=ps.str_arg_len,
                              ringbuf_pages=ps.ringbuf_pages,
                              prefixes=prefix_table(ps.write_prefixes, ps.read_prefixes),
                              disabled=tuple(ps.disabled_probes), signal_all=ps.signal_all)
        self.probes: Probes | None = None
        self.seq_events = 0
        self.seq_syscalls = 0
        self.by_kind: Counter[str] = Counter()
        self.drops: Counter[str] = Counter()
        self.health = HealthReporter(self.host, self.boot, time.time_ns())
        self._stop = False
        self._reload = False
        self._config_change: str | None = None
        self.endpoints: Endpoints | None = None

    # -- records -------------------------------------------------------------
    def _cgroup_path(self, cgroup_id: int) -> str | None:
        path = self.tracker.cgroup_path(cgroup_id) if self.tracker else None
        if path is None:
            path = self.cgroups.path(cgroup_id)
            if self.tracker is not None and path is not None and cgroup_id not in self._observed:
                self._observed.add(cgroup_id)
                self.tracker.observe(cgroup_id, path)
        return path

    def _on_record(self, data: int, size: int) -> None:
        try:
            rec = self.decoder.decode(ct.string_at(data, size))
        except DecodeError:
            self.drops["decode"] += 1
            return
        self.publish_event(rec)

    def publish_event(self, rec: dict[str, Any]) -> None:
        self.seq_events += 1
        rec["seq"] = self.seq_events
        try:
            value = self.codec.encode("raw_event", rec)
        except CodecError:
            self.drops["encode"] += 1
            return
        self.publisher.publish("raw.events", self.key, value, seq=self.seq_events)
        self.by_kind[rec["kind"]] += 1
        self.metrics.observe_event(rec)

    def _heartbeat(self) -> dict[str, Any]:
        """A raw event that says this host's events up to now were read and sent:
        downstream, it moves the host's event time while the host is quiet, and
        while the host cannot publish it waits in the spool with everything else."""
        return {"host_id": self.host, "boot_id": self.boot, "seq": 0, "ts_ns": time.time_ns(),
                "kind": HEARTBEAT, "pid": 0, "tid": 0, "ppid": 0, "uid": 0, "gid": 0, "comm": "",
                "cgroup_id": 0, "cgroup_path": None,
                "ns": {"pid": 0, "mnt": 0, "net": 0, "user": 0, "uts": 0, "ipc": 0, "cgroup": 0},
                "exec_id": "", "parent_exec_id": "", "payload": None}

    def _syscall_record(self, cg: int, pid: int, entry: dict[str, Any], interval: int) -> dict[str, Any]:
        self.seq_syscalls += 1
        return {"host_id": self.host, "boot_id": self.boot, "seq": self.seq_syscalls,
                "ts_ns": time.time_ns(), "interval_ns": interval, "pid": pid, "comm": entry["comm"],
                "cgroup_id": cg, "cgroup_path": self._cgroup_path(cg),
                "exec_id": exec_id(self.host, self.boot, pid, entry["start_ns"] // NS_PER_TICK),
                "arch": ARCH, "counts": [{"nr": nr, "count": n} for nr, n in sorted(entry["counts"].items())],
                "fileio": []}

    # -- loop ----------------------------------------------------------------
    def run(self) -> int:
        ps = self.settings.producer
        signal.signal(signal.SIGTERM, lambda *_: self.stop())
        signal.signal(signal.SIGINT, lambda *_: self.stop())
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "_reload", True))
        port = ps.metrics_port or self.settings.metrics_port
        if port:
            self.endpoints = Endpoints(port, self.settings.metrics_addr,
                                       ready=lambda: self.probes is not None).start()
        self.probes = Probes(self.spec, self._on_record)
        log.warning("probes attached: %s", ", ".join(self.spec.groups))
        if ps.proc_snapshot:
            from eunomia.producer.procsnap import snapshot

            for rec in snapshot(self.host, self.boot, os.getpid()):
                rec["cgroup_path"] = rec.get("cgroup_path") or self._cgroup_path(rec["cgroup_id"])
                self.publish_event(rec)
        if self.tracker is not None:
            self.tracker.start()
        next_tick = time.monotonic() + ps.interval_s
        try:
            while not self._stop:
                self.probes.poll(50)
                self._drain_containers()
                self.publisher.poll(0)
                if time.monotonic() >= next_tick:
                    next_tick += ps.interval_s
                    self._tick()
            self.probes.consume()
            self._tick()
        finally:
            self._shutdown()
        return 0

    def _drain_containers(self) -> None:
        while True:
            try:
                key, rec = self.containers.get_nowait()
            except queue.Empty:
                return
            value = self.codec.encode("container", rec) if rec is not None else None
            self.publisher.publish("containers", key.encode(), value)

    def _interval_records(self) -> list[dict[str, Any]]:
        """One raw.syscalls record per (cgroup, process) with syscall counts, file
        I/O statistics or both, drained from the kernel for the interval just ended."""
        assert self.probes is not None
        interval, counts = 0, {}
        fileio: dict[tuple[int, int], dict[str, Any]] = {}
        if self.probes.syscalls is not None:
            interval, counts = self.probes.syscalls.drain()
        if self.probes.fileio is not None:
            fi_interval, fileio = self.probes.fileio.drain()
            interval = interval or fi_interval
        out = []
        for key in sorted(counts.keys() | fileio.keys()):
            fio = fileio.get(key)
            entry = counts.get(key) or {"counts": {}, "comm": fio["comm"], "start_ns": fio["start_ns"]}
            if not entry["comm"] and fio is not None:
                entry = {**entry, "comm": fio["comm"], "start_ns": entry["start_ns"] or fio["start_ns"]}
            rec = self._syscall_record(key[0], key[1], entry, interval)
            rec["fileio"] = fio["fileio"] if fio is not None else []
            out.append(rec)
        return out

    def enabled_groups(self) -> list[str]:
        return [g for g in self.spec.groups if g not in self.spec.disabled]

    def _tick(self) -> None:
        if self._reload:
            self._apply_reload()
        if self.probes is not None:
            for rec in self._interval_records():
                self.publisher.publish("raw.syscalls", self.key, self.codec.encode("syscall_counts", rec),
                                       seq=rec["seq"])
                self.metrics.observe_syscalls(rec)
        if self.probes is not None:
            for kind, n in self.probes.drops().items():
                self.drops[f"ringbuf:{kind}"] = n
        self.decoder.clock.refresh()
        self.publish_event(self._heartbeat())
        stats = self.publisher.stats()
        health = self.health.record(self.seq_events, dict(self.by_kind), dict(self.drops), stats,
                                    self.publisher.lost_ranges, self.enabled_groups(),
                                    self._config_change)
        self._config_change = None
        self.publisher.publish("producer.health", self.key, self.codec.encode("producer_health", health))
        self.metrics.update(dict(self.by_kind), dict(self.drops), stats)
        if self.endpoints is not None:
            self.endpoints.beat()

    def _apply_reload(self) -> None:
        """SIGHUP: re-read the file and environment. Path filters, the signal
        filter and which loaded groups are on change in place (their programs
        stay attached); a group that was not loaded at start needs a restart."""
        self._reload = False
        load_settings.cache_clear()
        try:
            new = load_settings().producer
        except Exception as exc:  # a broken file keeps the running configuration
            self._config_change = f"reload refused: {str(exc).splitlines()[0]}"
            log.warning("%s", self._config_change)
            return
        changes = []
        table = prefix_table(new.write_prefixes, new.read_prefixes)
        if table != self.spec.prefixes and self.probes is not None and "file" in self.spec.groups:
            self.probes.set_prefixes(table)
            self.spec.prefixes = table
            changes.append(f"file prefixes: {', '.join(p for p, _ in table)}")
        changes += self.reconfigure_groups(list(new.probes), list(new.disabled_probes), new.signal_all)
        if changes:
            self._config_change = "; ".join(changes)
            log.warning("reloaded: %s", self._config_change)

    def reconfigure_groups(self, probes: list[str], disabled: list[str], signal_all: bool) -> list[str]:
        """Flip group flags to match ``probes`` minus ``disabled``; what changed, in words."""
        changes = []
        loaded = self.spec.groups
        want_off = tuple(g for g in loaded if g not in probes or g in disabled)
        if want_off != self.spec.disabled:
            was = set(self.enabled_groups())
            self.spec.disabled = want_off
            if self.probes is not None:
                self.probes.set_disabled(want_off)
            now = set(self.enabled_groups())
            if now - was:
                changes.append(f"enabled: {', '.join(sorted(now - was))}")
            if was - now:
                changes.append(f"disabled: {', '.join(sorted(was - now))}")
        missing = [g for g in probes if g not in loaded and g not in disabled]
        if missing:
            changes.append(f"not loaded, needs a restart: {', '.join(missing)}")
        if signal_all != self.spec.signal_all and "signal" in loaded:
            self.spec.signal_all = signal_all
            if self.probes is not None:
                self.probes.set_signal_all(signal_all)
            changes.append(f"signal filter: {'all' if signal_all else 'boundary or fatal'}")
        return changes

    def stop(self) -> None:
        self._stop = True

    def _shutdown(self) -> None:
        if self.tracker is not None:
            self.tracker.stop()
            self._drain_containers()
        if self.probes is not None:
            self.probes.close()
        left = self.publisher.flush(30)
        if left:
            log.warning("%d messages not acknowledged at exit stay in the spool", left)
        self.publisher.close(10)
        if self.endpoints is not None:
            self.endpoints.stop()


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Agent(load_settings()).run()
