"""The topic layout of docs/architecture.md and its idempotent creation.

Compaction where a topic is a table (``containers``, ``seccomp.profiles``: the
latest value per key is the state); time retention for streams. Each topic names
the roles that write and read it: the least Kafka ACLs of every role
(``eunomia.kafka.acls``) are derived from this table and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from eunomia.config import Settings
from eunomia.errors import AccessDenied, BrokerUnavailable

__all__ = ["TOPICS", "WORKERS", "TopicSpec", "create_topics", "topic_specs", "warm_up_group_coordinator"]


WORKERS = ("enrich", "rules", "seccomp", "health")


@dataclass(frozen=True)
class TopicSpec:
    name: str  # logical name, without prefix
    schema: str | None  # value schema (short name); None for JSON topics
    compacted: bool = False
    partitions: int | None = None  # None: the configured default
    config: dict[str, str] = field(default_factory=dict)
    writers: tuple[str, ...] = ()  # roles (eunomia.kafka.acls.ROLES) that produce to it
    readers: tuple[str, ...] = ()  # roles that consume it
    declared_by: str | None = None  # the worker whose faust app declares (creates) it too


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("raw.events", "raw_event", writers=("producer",), readers=("enrich", "health")),
    TopicSpec("raw.syscalls", "syscall_counts", writers=("producer",), readers=("enrich",)),
    TopicSpec("containers", "container", compacted=True, writers=("producer",), readers=("enrich",)),
    # same count as raw.events: one faust app reads both
    TopicSpec("producer.health", "producer_health", writers=("producer",), readers=("health",)),
    TopicSpec("enriched.events", "enriched_event", writers=("enrich",), readers=("rules", "seccomp")),
    TopicSpec("alerts", "alert", partitions=3, writers=("rules", "seccomp", "health"),
              readers=("siem",)),
    TopicSpec("alerts.ocsf", None, partitions=3, writers=("rules",), readers=("siem",)),
    # read by operators (``eunomia seccomp``), with admin rights
    TopicSpec("seccomp.profiles", "seccomp_profile", compacted=True, partitions=3,
              writers=("seccomp",)),
    TopicSpec("dlq", "dead_letter", partitions=3, writers=WORKERS),
    # internal to the seccomp worker (observations re-keyed by image, JSON);
    # created up front: a topic faust declares itself is missing from the
    # consumer's metadata until its next refresh (minutes) on a new broker
    TopicSpec("seccomp.by-image", None, writers=("seccomp",), readers=("seccomp",),
              declared_by="seccomp"),
)


def topic_specs(settings: Settings) -> list[NewTopic]:
    out = []
    for spec in TOPICS:
        config = {"compression.type": "producer"}
        if spec.compacted:
            config.update({"cleanup.policy": "compact", "min.compaction.lag.ms": "0",
                           "segment.ms": "600000"})
        else:
            config.update({"cleanup.policy": "delete",
                           "retention.ms": str(settings.topics.retention_ms)})
        if settings.topics.replication_factor >= 3:
            config["min.insync.replicas"] = "2"
        config.update(spec.config)
        out.append(NewTopic(settings.topic(spec.name),
                            num_partitions=spec.partitions or settings.topics.partitions,
                            replication_factor=settings.topics.replication_factor,
                            config=config))
    return out


def create_topics(settings: Settings, timeout: float = 30.0) -> dict[str, str]:
    """Create the topics that do not exist yet; returns name -> created|exists."""
    from eunomia.kafka.reach import ClientErrors, metadata

    errors = ClientErrors()
    admin = AdminClient(errors.config(settings))
    existing = set(metadata(admin, errors, settings, timeout=timeout).topics)
    result: dict[str, str] = {}
    todo = []
    for nt in topic_specs(settings):
        if nt.topic in existing:
            result[nt.topic] = "exists"
        else:
            todo.append(nt)
    if todo:
        for name, fut in admin.create_topics(todo, request_timeout=timeout).items():
            try:
                fut.result()
                result[name] = "created"
            except KafkaException as exc:
                err = exc.args[0]
                if err.name() == "TOPIC_ALREADY_EXISTS":
                    result[name] = "exists"
                elif err.name() in ("TOPIC_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"):
                    raise AccessDenied(f"Kafka refused User:{settings.kafka.sasl_username} creating "
                                       f"{name} ({err.name()}): topics are created with the admin "
                                       "role's credentials") from None
                else:
                    raise BrokerUnavailable(f"creating {name} failed: {err.str()}") from None
    return result


def warm_up_group_coordinator(settings: Settings, timeout: float = 60.0) -> None:
    """Commit one consumer-group offset so ``__consumer_offsets`` exists and has
    leaders before several faust workers start at once: on a brand-new broker
    their simultaneous first coordinator lookups were seen to leave one of them
    waiting for minutes."""
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.topic("producer.health")
    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"{settings.topics.prefix}warmup",
                  "enable.auto.commit": False, "session.timeout.ms": 10000})
    try:
        c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    except KafkaException as exc:
        raise BrokerUnavailable(f"group coordinator not available: {exc.args[0].str()}") from None
    finally:
        c.close()
