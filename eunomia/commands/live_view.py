"""What `eunomia up` shows while the pipeline runs: events/s by kind, the
containers seen, alerts as they arrive, seccomp profiles learning.

It reads the pipeline's own output topics with a plain consumer (its own group,
latest offsets) so it shows what a downstream user would see, not internals.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

from confluent_kafka import Consumer
from rich.console import Group
from rich.table import Table

from eunomia.config import Settings
from eunomia.schemas import CodecError, codec_for

__all__ = ["LiveStats", "LiveView"]


@dataclass
class LiveStats:
    started: float = field(default_factory=time.monotonic)
    by_kind: Counter[str] = field(default_factory=Counter)
    recent: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200_000))
    containers: dict[str, str] = field(default_factory=dict)
    alerts: deque[dict] = field(default_factory=lambda: deque(maxlen=12))
    alert_count: int = 0
    profiles: dict[str, tuple[int, int]] = field(default_factory=dict)  # image -> (version, n)
    undecodable: int = 0

    def rate_by_kind(self, window: float = 5.0) -> Counter[str]:
        now = time.monotonic()
        out: Counter[str] = Counter()
        for t, kind in reversed(self.recent):
            if now - t > window:
                break
            out[kind] += 1
        return Counter({k: v / window for k, v in out.items()})


class LiveView:
    def __init__(self, settings: Settings, on_alert=None) -> None:
        self.settings = settings
        self.stats = LiveStats()
        self._codec = codec_for(settings)
        self._stop = threading.Event()
        self._on_alert = on_alert
        self._thread = threading.Thread(target=self._run, name="live-view", daemon=True)

    def start(self) -> LiveView:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        s = self.settings
        topics = {s.topic("enriched.events"): "enriched_event", s.topic("alerts"): "alert",
                  s.topic("seccomp.profiles"): "seccomp_profile"}
        consumer = Consumer({**s.kafka.librdkafka(), "group.id": f"eunomia-live-{uuid.uuid4().hex[:8]}",
                             "auto.offset.reset": "latest", "enable.auto.commit": False})
        consumer.subscribe(list(topics))
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(500, 0.5):
                    if msg.error() or msg.value() is None:
                        continue
                    try:
                        record = self._codec.decode(msg.value(), topics[msg.topic()])
                    except CodecError:
                        self.stats.undecodable += 1
                        continue
                    self._account(topics[msg.topic()], record)
        finally:
            consumer.close()

    def _account(self, schema: str, record: dict) -> None:
        st = self.stats
        if schema == "enriched_event":
            kind = record["event"]["kind"]
            st.by_kind[kind] += 1
            st.recent.append((time.monotonic(), kind))
            c = record["container"]
            if c["id"] != "host":
                st.containers[c["id"][:12]] = f"{c.get('name') or '?'} ({c.get('image_name') or '?'})"
        elif schema == "alert":
            st.alerts.append(record)
            st.alert_count += 1
            if self._on_alert:
                self._on_alert(record)
        elif schema == "seccomp_profile":
            st.profiles[record["image"]] = (record["version"], len(record["syscalls"]))

    def render(self) -> Group:
        st = self.stats
        rates = st.rate_by_kind()
        ev = Table("kind", "events/s", "total", title="Events (enriched.events)", expand=False)
        for kind, total in st.by_kind.most_common(12):
            ev.add_row(kind, f"{rates.get(kind, 0):.1f}", str(total))
        ct = Table("container", "name (image)", title=f"Containers seen: {len(st.containers)}")
        for cid, desc in list(st.containers.items())[-8:]:
            ct.add_row(cid, desc)
        al = Table("level", "rule", "container", "message", title=f"Alerts: {st.alert_count}")
        for a in list(st.alerts)[-8:]:
            al.add_row(a["level"], a["rule_id"], a.get("container_name") or a.get("container_id") or "",
                       a["message"][:80])
        sp = Table("image", "version", "syscalls", title="Seccomp profiles")
        for image, (version, n) in st.profiles.items():
            sp.add_row(image, str(version), str(n))
        return Group(ev, ct, al, sp)
