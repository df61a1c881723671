"""Kafka delivery for the producer: idempotent, ordered per host, spooled to disk
when the broker is away or slow, so nothing is lost silently.

Order: everything handed to librdkafka precedes everything in the spool. Loss:
librdkafka never expires a message, a spooled one leaves the spool only on its
delivery report, failed ones are sent again; only records that overflow the
spool or exceed the broker's size limit are dropped, and counted. Duplicates: the
idempotent producer absorbs retries; a crash of this process re-sends the spooled
records in flight, which consumers drop by (host_id, boot_id, seq).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from functools import partial
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from eunomia.config import Settings
from eunomia.producer.spool import Spool, SpoolRecord

__all__ = ["Publisher"]

log = logging.getLogger(__name__)

_OUTAGE_CODES = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}
_REFUSED = {KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED}
_NEVER_FITS = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}


def _librdkafka_logger() -> logging.Logger:
    """librdkafka's own chatter (a line per reconnect attempt) stays out of the way:
    the publisher logs an outage itself, once."""
    lg = logging.getLogger("eunomia.producer.librdkafka")
    lg.setLevel(logging.CRITICAL)
    return lg


class Publisher:
    """Non-blocking publish with an ordered disk spool behind librdkafka.

    Belongs to one thread: publish, poll and the delivery callbacks (served inside
    poll/flush) share the spools without locks. While anything is spooled, publish
    appends behind it and poll drains it (the retry spool first: it is older). The
    broker counts as unreachable after all-brokers-down or transport errors, or when
    nothing was delivered for ``stall_seconds``; meanwhile only a small probe of
    spooled records goes to librdkafka, and the outage is logged once each way."""

    def __init__(self, settings: Settings, *, spool_dir: Path, spool_max_bytes: int,
                 stall_seconds: float = 5.0, drain_batch: int = 20_000, queue_messages: int = 200_000,
                 probe_messages: int = 100, extra_config: dict[str, Any] | None = None,
                 metrics: Any | None = None) -> None:
        self.settings = settings
        self.stall_seconds = stall_seconds
        self.drain_batch = drain_batch
        self.probe_messages = probe_messages
        self._queue_cap = queue_messages
        self._metrics = metrics
        self._conf: dict[str, Any] = {
            **settings.kafka.librdkafka(),
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": queue_messages,
            "queue.buffering.max.kbytes": 64 * 1024,  # RSS budget; beyond it, the disk spool
            "message.timeout.ms": 0,  # never expire: an outage parks messages, it does not fail them
            "socket.keepalive.enable": True,
            "reconnect.backoff.max.ms": 2000,
            "error_cb": self._on_error,
            "throttle_cb": self._on_throttle,
            "on_delivery": self._on_live,
            "logger": _librdkafka_logger(),
            **(extra_config or {}),
        }
        self._producer = Producer(self._conf)
        spool_dir = Path(spool_dir)
        self.spool = Spool(spool_dir / "main", spool_max_bytes)
        self.retry = Spool(spool_dir / "retry", spool_max_bytes)
        self.spool.reserved_bytes = self.retry.bytes
        self._topics: dict[str, str] = {}  # logical -> full topic name
        self._logical: dict[str, str] = {}  # and back, for failed live messages
        self._redo: deque[tuple[Spool, SpoolRecord]] = deque()  # spooled, delivery failed
        self._too_large_ranges: list[tuple[int, int]] = []
        self._spooling = bool(self.spool.unread or self.retry.unread)
        self._reachable = True
        self._fatal: KafkaError | None = None
        self._last_progress = time.monotonic()
        self._seen_delivered = 0
        self._seen_at_outage = 0
        self._had_outstanding = False
        self._outage_started = 0.0
        self.delivered = 0
        self.spooled = 0
        self.failed_deliveries = 0
        self.dropped_too_large = 0
        self._lat_sum = 0.0
        self._lat_max = 0.0
        self._lat_n = 0
        self.throttled_s = 0.0  # time the brokers asked this producer to wait (client quota)
        self._next_recreate = 0.0
        self._refusal_said = False
        if self._spooling:
            log.info("spool holds %d messages from a previous run; draining them first",
                     len(self.spool) + len(self.retry))

    # -- hot path ------------------------------------------------------------
    def publish(self, logical_topic: str, key: bytes | None, value: bytes | None, *,
                seq: int | None = None) -> None:
        """Queue one message; never blocks. Goes to the spool while anything is spooled."""
        if self._spooling:
            self._to_spool(logical_topic, key, value, seq)
            return
        topic = self._topics.get(logical_topic) or self._topic(logical_topic)
        try:
            self._producer.produce(topic, value, key)  # report: the global _on_live
        except BufferError:
            self._spooling = True
            self._to_spool(logical_topic, key, value, seq)
        except KafkaException as exc:
            self._refused(exc.args[0])
            self._to_spool(logical_topic, key, value, seq)

    def _topic(self, logical: str) -> str:
        topic = self._topics[logical] = self.settings.topic(logical)
        self._logical[topic] = logical
        return topic

    def _to_spool(self, logical_topic: str, key: bytes | None, value: bytes | None,
                  seq: int | None) -> None:
        if self.spool.append(logical_topic, key, value, seq):
            self.spooled += 1
        self._spooling = True

    # -- delivery reports ----------------------------------------------------
    def _sample_latency(self, msg: Any) -> None:
        """Every 16th delivery: latency is sampled to keep the report path cheap."""
        lat = msg.latency() or 0.0
        self._lat_sum += lat
        self._lat_n += 1
        if lat > self._lat_max:
            self._lat_max = lat
        if self._metrics is not None:
            self._metrics.observe_latency(lat)

    def _on_live(self, err: KafkaError | None, msg: Any) -> None:
        """Report of a message produced straight from ``publish``. It is the producer-wide
        callback (a per-message callback would halve the produce rate), so the seq is not
        at hand here: a live message that fails goes to the retry spool without it."""
        if err is None:
            self.delivered += 1
            if not self.delivered & 15:
                self._sample_latency(msg)
            return
        if self._failed(err, None):
            return
        # Older than anything in the main spool: the retry spool drains first. Its own
        # bound is not shared with the main spool, so a full main spool never costs
        # the older messages librdkafka held (disk use <= 2 x spool_max_bytes).
        logical = self._logical.get(msg.topic(), msg.topic())
        if self.retry.append(logical, msg.key(), msg.value(), None):
            self.spooled += 1
        self._spooling = True

    def _on_spooled(self, source: Spool, rec: SpoolRecord, err: KafkaError | None, msg: Any) -> None:
        if err is None:
            source.ack(rec.token)
            self.delivered += 1
            if not self.delivered & 15:
                self._sample_latency(msg)
            return
        if self._failed(err, rec.seq):
            source.ack(rec.token)  # cannot ever be delivered; counted as dropped
            return
        self._redo.append((source, rec))  # stays unacknowledged on disk until delivered
        self._spooling = True

    def _failed(self, err: KafkaError, seq: int | None) -> bool:
        """Count a failed delivery; True when the message can never be delivered."""
        self.failed_deliveries += 1
        if err.code() in _NEVER_FITS:
            self.dropped_too_large += 1
            self._lost(seq)
            log.error("message seq=%s rejected by the broker (%s); dropped", seq, err.str())
            return True
        if err.code() not in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
            self._mark_unreachable(err)
        return False

    def _lost(self, seq: int | None) -> None:
        if seq is None:
            return
        ranges = self._too_large_ranges
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            log.error("Kafka producer fatal error: %s; recreating the producer", err.str())
        elif err.code() in _OUTAGE_CODES:
            self._mark_unreachable(err)
        else:
            log.debug("librdkafka: %s", err.str())

    def _on_throttle(self, event: Any) -> None:
        """A broker delays this producer's requests: its principal is over its client
        quota. Messages wait in librdkafka and the spool, in order; nothing is lost."""
        if event.throttle_time > 0:
            if not self.throttled_s:
                log.warning("Kafka throttles this producer (its principal is over its quota): "
                            "%s asked it to wait %.0f ms; events are delayed, not lost",
                            event.broker_name, event.throttle_time * 1000)
            self.throttled_s += event.throttle_time

    def _refused(self, err: KafkaError) -> None:
        """librdkafka refused a message before sending it: the producer instance is in a
        fatal state, or it remembers that the broker refused the topic (the principal lacks
        its ACL). The message waits in the spool, and a new instance asks the broker afresh
        (``poll``, at most once per ``stall_seconds``)."""
        self._mark_unreachable(err)
        if self._fatal is None:
            self._fatal = err

    def _mark_unreachable(self, err: KafkaError | str) -> None:
        reason = err.str() if isinstance(err, KafkaError) else err
        if self._reachable:
            self._reachable = False
            self._outage_started = time.monotonic()
            self._seen_at_outage = self.delivered
            log.warning("Kafka broker unreachable at %s (%s); spooling to %s",
                        self.settings.kafka.bootstrap_servers, reason, self.spool.dir.parent)
        if isinstance(err, KafkaError) and err.code() in _REFUSED and not self._refusal_said:
            self._refusal_said = True  # once per outage: the cause an operator must fix
            log.error("Kafka at %s refuses user %r (%s): its ACLs are missing (eunomia acls apply); "
                      "events wait in the spool until they are granted",
                      self.settings.kafka.bootstrap_servers, self.settings.kafka.sasl_username, reason)
        self._spooling = True

    # -- pumping -------------------------------------------------------------
    def poll(self, timeout: float = 0) -> int:
        """Serve delivery reports, detect stalls, drain the spool. Call it often."""
        try:
            n = self._producer.poll(timeout)
        except KafkaException as exc:  # confluent-kafka raises a fatal error from poll too
            n = 0
            self._mark_unreachable(exc.args[0])
            self._fatal = exc.args[0]
        now = time.monotonic()
        if self._fatal is not None and now >= self._next_recreate:
            self._recreate()
            self._next_recreate = now + self.stall_seconds
        outstanding = len(self._producer)
        if self.delivered != self._seen_delivered or not self._had_outstanding:
            self._seen_delivered = self.delivered
            self._last_progress = now
            if not self._reachable and self.delivered != self._seen_at_outage:
                self._reachable = True
                self._refusal_said = False
                log.warning("Kafka broker reachable again after %.0fs; draining %d spooled "
                            "messages", now - self._outage_started, len(self.spool) + len(self.retry))
        self._had_outstanding = outstanding > 0
        if self._reachable and outstanding and now - self._last_progress > self.stall_seconds:
            self._mark_unreachable(f"no delivery for {self.stall_seconds:.0f}s")
        if self._spooling:
            self._drain(outstanding)
        self.spool.reserved_bytes = self.retry.bytes
        self.spool.sync()
        self.retry.sync()
        return n

    def _drain(self, outstanding: int) -> None:
        if self._reachable:
            room = min(self.drain_batch, self._queue_cap // 2 - outstanding)
        else:
            room = self.probe_messages - outstanding  # probe: learn when the broker is back
        if room <= 0:
            return
        while room > 0 and self._redo:
            source, rec = self._redo[0]
            if not self._produce_spooled(source, rec):
                return
            self._redo.popleft()
            room -= 1
        for source in (self.retry, self.spool):
            if room <= 0:
                return
            recs = source.read(room)
            for i, rec in enumerate(recs):
                if not self._produce_spooled(source, rec):
                    # librdkafka is full after all: keep the rest, in order, for the next poll
                    self._redo.extend((source, r) for r in recs[i:])
                    return
            room -= len(recs)
            if source.unread:
                return
        if self._reachable and not self._redo and not self.retry.unread and not self.spool.unread:
            self._spooling = False

    def _produce_spooled(self, source: Spool, rec: SpoolRecord) -> bool:
        topic = self._topics.get(rec.topic) or self._topic(rec.topic)
        try:
            self._producer.produce(topic, rec.value, rec.key,
                                   on_delivery=partial(self._on_spooled, source, rec))
        except BufferError:
            return False
        except KafkaException as exc:
            self._refused(exc.args[0])
            return False
        return True

    def _recreate(self) -> None:
        """A fatal idempotence error makes the instance unusable, and a refused topic stays
        refused in it: purge it (failed messages return to the spools), then start a new one.
        What the old one had in flight is sent again, so this rare path may duplicate."""
        self._fatal = None
        try:
            self._producer.purge()
            self._producer.poll(0)
            self._producer.flush(0)
        except KafkaException as exc:  # its fatal error, raised once more
            log.debug("purging the old producer: %s", exc.args[0].str())
        self._producer = Producer(self._conf)

    # -- shutdown and introspection -----------------------------------------
    def flush(self, timeout: float = 10.0) -> int:
        """Deliver what can be delivered within ``timeout``; returns messages still pending
        (in librdkafka or in the spools)."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll(0.05)
            pending = len(self._producer) + len(self.spool) + len(self.retry)
            if not pending or time.monotonic() >= deadline:
                return pending

    def close(self, timeout: float = 10.0) -> None:
        """Flush, then move what is still in librdkafka to the retry spool and persist."""
        self.flush(timeout)
        if len(self._producer):
            self._producer.purge()
            self._producer.flush(0)
            self._producer.poll(0)
        self.spool.close()
        self.retry.close()

    @property
    def lost_ranges(self) -> list[tuple[int, int]]:
        """Seq ranges (first, last) dropped: spool full or rejected by the broker."""
        return sorted([*self.retry.lost_ranges, *self.spool.lost_ranges, *self._too_large_ranges])

    def stats(self) -> dict[str, Any]:
        """Counters since start; delivery latency is over every 16th delivery."""
        return {
            "delivered": self.delivered,
            "spooled": self.spooled,
            "spool_bytes": self.spool.bytes + self.retry.bytes,
            "spool_messages": len(self.spool) + len(self.retry),
            "dropped_spool_full": self.spool.dropped + self.retry.dropped,
            "dropped_too_large": self.dropped_too_large,
            "failed_deliveries": self.failed_deliveries,
            "in_flight": len(self._producer),
            "reachable": self._reachable,
            "spooling": self._spooling,
            "delivery_latency_avg_s": self._lat_sum / self._lat_n if self._lat_n else 0.0,
            "delivery_latency_max_s": self._lat_max,
            "throttled_s": self.throttled_s,
        }
