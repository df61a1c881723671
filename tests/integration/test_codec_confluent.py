"""The Confluent wire format end to end: records of every schema registered with
a REAL Schema Registry (Confluent REST API, served by Apicurio Registry on
127.0.0.1), produced through the real broker, consumed and compared field by
field by a reader that learns the writer schemas from the registry alone."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from eunomia.config import Settings
from eunomia.kafka.topics import TOPICS, create_topics
from eunomia.schemas import AvroCodec, SchemaStore, UnknownSchema
from eunomia.schemas.registry import RegistryResolver
from tests.avro_samples import samples

SCHEMA_TOPICS = [spec for spec in TOPICS if spec.schema is not None]


def _consume(settings: Settings, topic: str, n: int, timeout: float = 30.0) -> list[Message]:
    consumer = Consumer({**settings.kafka.librdkafka(), "group.id": f"t-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg)
    finally:
        consumer.close()
    return out


def _produce(settings: Settings, codec: AvroCodec) -> dict[str, list[dict]]:
    producer = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True,
                         "acks": "all"})
    sent: dict[str, list[dict]] = {}
    for spec in SCHEMA_TOPICS:
        assert spec.schema is not None
        records = samples(codec.store.parsed(spec.schema))
        sent[spec.name] = records
        for i, record in enumerate(records):
            producer.produce(settings.topic(spec.name), key=b"host-1",
                             value=codec.encode(spec.schema, record), headers={"i": str(i)})
    assert producer.flush(30) == 0
    return sent


def _by_index(msgs: list[Message]) -> list[Message]:
    return sorted(msgs, key=lambda m: int(dict(m.headers() or [])["i"]))


def test_every_schema_round_trips_in_confluent_framing(settings: Settings,
                                                      schema_registry_url: str) -> None:
    create_topics(settings)
    writer = AvroCodec(registry=RegistryResolver(schema_registry_url, SchemaStore()))
    sent = _produce(settings, writer)
    # A separate reader with its own store and client: it knows the writer schemas
    # only through the ids on the wire and the registry's answers.
    reader = AvroCodec(registry=RegistryResolver(schema_registry_url, SchemaStore()))
    client = SchemaRegistryClient({"url": schema_registry_url})
    for spec in SCHEMA_TOPICS:
        assert spec.schema is not None
        msgs = _by_index(_consume(settings, settings.topic(spec.name), len(sent[spec.name])))
        assert len(msgs) == len(sent[spec.name]), spec.name
        subject = reader.store.parsed(spec.schema)["name"]  # record-name strategy
        registered = client.get_latest_version(subject).schema_id
        for msg, record in zip(msgs, sent[spec.name], strict=True):
            value = msg.value()
            assert value is not None and value[0] == 0, "Confluent magic byte"
            assert int.from_bytes(value[1:5], "big") == registered, spec.name
            name, decoded = reader.decode_named(value, expect=spec.schema)
            assert name == spec.schema
            for field, expected in record.items():
                assert decoded[field] == expected, (spec.name, field)


def test_reader_without_registry_names_the_missing_schema_source(
        settings: Settings, schema_registry_url: str) -> None:
    create_topics(settings)
    writer = AvroCodec(registry=RegistryResolver(schema_registry_url, SchemaStore()))
    producer = Producer(settings.kafka.librdkafka())
    record = samples(writer.store.parsed("alert"))[0]
    producer.produce(settings.topic("alerts"), value=writer.encode("alert", record))
    assert producer.flush(30) == 0
    [msg] = _consume(settings, settings.topic("alerts"), 1)
    value = msg.value()
    assert value is not None
    sid = int.from_bytes(value[1:5], "big")
    with pytest.raises(UnknownSchema, match=rf"schema id {sid}, but no schema registry"):
        AvroCodec().decode(value, expect="alert")


def test_id_unknown_to_the_registry_is_a_typed_error(schema_registry_url: str) -> None:
    reader = AvroCodec(registry=RegistryResolver(schema_registry_url, SchemaStore()))
    frame = bytes([0]) + (987654).to_bytes(4, "big") + b"\x02"
    with pytest.raises(UnknownSchema, match="schema id 987654 not found"):
        reader.decode(frame)
