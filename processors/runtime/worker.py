"""What every worker is built on: its faust app, the offset guard on its input,
one Kafka output, dead letters through it, the codec its settings call for
(schema registry or not), the one way alerts leave a worker (``alerts`` in Avro
and ``alerts.ocsf`` in OCSF JSON, counted) and the consumer-lag gauge.

A worker subclass names its tables, topics and agents as members and registers
the agents on ``app`` in its constructor; ``app`` is what ``run_worker`` runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust

from eunomia.config import Settings
from eunomia.kafka.topics import TOPICS
from eunomia.processors.alerts.ocsf import ocsf_json
from eunomia.processors.runtime.app import create_app, input_topic
from eunomia.processors.runtime.dead_letters import DeadLetters
from eunomia.processors.runtime.metrics import ALERTS, LAG
from eunomia.processors.runtime.offset_guard import OffsetGuard
from eunomia.processors.runtime.output import KafkaOutput
from eunomia.schemas import AvroCodec, codec_for

__all__ = ["Worker"]

LAG_INTERVAL_S = 5.0


class Worker:
    """``app_options`` go to ``create_app`` (store, web_port, datadir);
    ``output_conf`` to the output's producer."""

    def __init__(self, name: str, settings: Settings, *, codec: AvroCodec | None = None,
                 output_conf: dict[str, Any] | None = None, **app_options: Any) -> None:
        self.name, self.settings = name, settings
        self.app: faust.App = create_app(name, settings, **app_options)
        self.guard = OffsetGuard.install(self.app)  # input faust's stream skipped is read again
        self.codec = codec or codec_for(settings)
        self.out = KafkaOutput(settings, name=name, **(output_conf or {}))
        self.dlq = DeadLetters(name, self.out, settings.topic("dlq"), self.codec)
        self.alerts_topic, self.ocsf_topic = settings.topic("alerts"), settings.topic("alerts.ocsf")
        self.input_topics: set[str] = set()
        self.lag_labels: set[tuple[str, str]] = set()
        self.app.timer(LAG_INTERVAL_S)(self.export_lag)
        self.app.task(self.learn_limits)

    def topic(self, *names: str, **kw: Any) -> faust.TopicT:
        """The prefixed topics ``names`` as one raw-bytes faust topic (an input:
        its partitions get a lag gauge)."""
        self.input_topics.update(self.settings.topic(n) for n in names)
        return input_topic(self.app, self.settings, *names, **kw)

    def decoder(self, schema: str) -> Callable[[Any], dict[str, Any]]:
        """Decodes a message's value as a record of ``schema`` (for ``dlq.decoded``)."""
        decode = self.codec.decode
        return lambda msg: decode(msg.value, expect=schema)

    def emit_alert(self, alert: dict[str, Any]) -> None:
        """An alert record to ``alerts`` (Avro) and ``alerts.ocsf`` (OCSF JSON),
        keyed by its id, counted by worker, rule and level."""
        key = alert["alert_id"].encode()
        self.out.produce(self.alerts_topic, key, self.codec.encode("alert", alert))
        self.out.produce(self.ocsf_topic, key, ocsf_json(alert))
        ALERTS.labels(self.name, alert["rule_id"], alert["level"]).inc()

    async def learn_limits(self) -> None:
        """At start: the output topics' size limits, read off the event loop."""
        topics = [self.settings.topic(spec.name) for spec in TOPICS]
        await asyncio.get_running_loop().run_in_executor(None, self.out.learn_limits, topics)

    async def export_lag(self) -> None:
        """Timer: high watermark - next offset to process, per assigned input
        partition (the fetch position until the worker processed one)."""
        consumer = self.app.consumer
        seen: set[tuple[str, str]] = set()
        for tp in consumer.assignment():
            if tp.topic not in self.input_topics:
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            nxt = self.dlq.next_offset.get((tp.topic, tp.partition))
            if nxt is None:
                nxt = await consumer.position(tp)
            if nxt is None:
                continue
            label = (tp.topic, str(tp.partition))
            LAG.labels(self.name, *label).set(max(0, high - nxt))
            seen.add(label)
        for label in self.lag_labels - seen:  # revoked: not this worker's lag any more
            LAG.remove(self.name, *label)
        self.lag_labels = seen
