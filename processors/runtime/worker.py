"""What every worker is built on: its faust app, the offset guard on its input,
one Kafka output and dead letters through it.

A worker subclass names its tables, topics and agents as members and registers
the agents on ``app`` in its constructor; ``app`` is what ``run_worker`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust

from eunomia.config import Settings
from eunomia.processors.runtime.app import create_app, input_topic
from eunomia.processors.runtime.dead_letters import DeadLetters
from eunomia.processors.runtime.offset_guard import OffsetGuard
from eunomia.processors.runtime.output import KafkaOutput
from eunomia.schemas import AvroCodec

__all__ = ["Worker"]


class Worker:
    """``app_options`` go to ``create_app`` (store, web_port, datadir);
    ``output_conf`` to the output's producer."""

    def __init__(self, name: str, settings: Settings, *, codec: AvroCodec | None = None,
                 output_conf: dict[str, Any] | None = None, **app_options: Any) -> None:
        self.settings = settings
        self.app: faust.App = create_app(name, settings, **app_options)
        self.guard = OffsetGuard.install(self.app)  # input faust's stream skipped is read again
        self.codec = codec or AvroCodec()
        self.out = KafkaOutput(settings, **(output_conf or {}))
        self.dlq = DeadLetters(name, self.out, settings.topic("dlq"), self.codec)

    def topic(self, *names: str, **kw: Any) -> faust.TopicT:
        """The prefixed topics ``names`` as one raw-bytes faust topic."""
        return input_topic(self.app, self.settings, *names, **kw)

    def decoder(self, schema: str) -> Callable[[Any], dict[str, Any]]:
        """Decodes a message's value as a record of ``schema`` (for ``dlq.decoded``)."""
        decode = self.codec.decode
        return lambda msg: decode(msg.value, expect=schema)
