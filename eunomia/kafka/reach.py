"""Reaching the brokers from a command: one line that says why not.

librdkafka reports a refused login only to ``error_cb`` while a metadata request
just times out as a "transport failure"; these helpers ask in short steps, watch
the callback and fail at once with the cause: wrong credentials, or no broker.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from eunomia.config import Settings
from eunomia.errors import BrokerUnavailable

__all__ = ["BrokerAuthFailed", "ClientErrors", "metadata"]


class BrokerAuthFailed(BrokerUnavailable):
    """The broker answered and refused the configured credentials."""


class ClientErrors:
    """``error_cb`` for a confluent-kafka client: keeps the first refused login."""

    def __init__(self) -> None:
        self.auth: KafkaError | None = None

    def __call__(self, err: KafkaError) -> None:
        if err.code() == KafkaError._AUTHENTICATION and self.auth is None:
            self.auth = err

    def config(self, settings: Settings) -> dict[str, Any]:
        return {**settings.kafka.librdkafka(), "error_cb": self}


def metadata(client: Any, errors: ClientErrors, settings: Settings, topic: str | None = None,
             timeout: float = 30.0) -> Any:
    """``client.list_topics`` that fails fast on refused credentials and with
    one line when no broker answers within ``timeout``."""
    kafka = settings.kafka
    deadline = time.monotonic() + timeout
    while True:
        step = max(0.1, min(2.0, deadline - time.monotonic()))
        try:
            return client.list_topics(topic, timeout=step)
        except KafkaException as exc:
            client.poll(0)  # serves error_cb
            if errors.auth is not None:
                raise BrokerAuthFailed(
                    f"Kafka at {kafka.bootstrap_servers} refused the credentials of user "
                    f"{kafka.sasl_username!r} ({kafka.sasl_mechanism}): {errors.auth.str()}") from None
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"no Kafka broker at {kafka.bootstrap_servers}: {exc.args[0].str()}") from None
