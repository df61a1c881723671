"""Every schema's records through a real Apache Kafka broker and back, compared
field by field (single-object encoding; the Confluent framing has its own test
against a real registry)."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer

from eunomia.config import Settings
from eunomia.kafka.topics import TOPICS, create_topics
from eunomia.schemas import AvroCodec
from tests.avro_samples import samples


def consume_all(settings: Settings, topic: str, n: int, timeout: float = 30.0) -> list:
    import time

    consumer = Consumer({**settings.kafka.librdkafka(), "group.id": f"t-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(msg)
    finally:
        consumer.close()
    return out


def test_every_topic_schema_round_trips_through_kafka(settings: Settings) -> None:
    result = create_topics(settings)
    assert set(result.values()) == {"created"}
    codec = AvroCodec()
    producer = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True, "acks": "all",
                         "compression.type": "lz4"})
    sent: dict[str, list[dict]] = {}
    for spec in TOPICS:
        if spec.schema is None:
            continue
        records = samples(codec.store.parsed(spec.schema))
        sent[spec.name] = records
        for i, record in enumerate(records):
            producer.produce(settings.topic(spec.name), key=b"host-1",
                             value=codec.encode(spec.schema, record), headers={"i": str(i)})
    assert producer.flush(30) == 0
    for spec in TOPICS:
        if spec.schema is None:
            continue
        msgs = consume_all(settings, settings.topic(spec.name), len(sent[spec.name]))
        assert len(msgs) == len(sent[spec.name]), spec.name
        got = sorted(msgs, key=lambda m: int(dict(m.headers())["i"]))
        for msg, record in zip(got, sent[spec.name], strict=True):
            name, decoded = codec.decode_named(msg.value(), expect=spec.schema)
            assert name == spec.schema
            for field, value in record.items():
                assert decoded[field] == value, (spec.name, field)


def test_topic_creation_is_idempotent_and_compacts_tables(settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    create_topics(settings)
    assert set(create_topics(settings).values()) == {"exists"}
    admin = AdminClient(settings.kafka.librdkafka())
    for name, policy in (("containers", "compact"), ("seccomp.profiles", "compact"),
                         ("raw.events", "delete")):
        res = ConfigResource(ConfigResource.Type.TOPIC, settings.topic(name))
        conf = admin.describe_configs([res])[res].result()
        assert conf["cleanup.policy"].value == policy, name
    md = admin.list_topics(timeout=10)
    assert len(md.topics[settings.topic("raw.events")].partitions) == settings.topics.partitions
