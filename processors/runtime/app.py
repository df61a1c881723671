"""The faust-streaming app every processor shares, and its conventions.

- ``create_app("enrich", settings)`` gives app id ``<prefix>enrich``: the consumer
  group and the changelog topics carry the topic prefix, so two pipelines on one
  cluster never share state. New groups start at the earliest offset.
- Keys and values are raw bytes on every topic (``input_topic``): processors
  decode Avro themselves, so an undecodable message is a dead letter, not a
  crash inside faust.
- Tables keep JSON values (never pickle: a changelog is input too);
  ``partitioned_table`` sends each change to the changelog partition of the
  event that caused it, so state stays co-partitioned with its input when an
  agent works in batches.
- Store: ``memory://`` (tests; rebuilt from the changelog) or ``rocksdb://``.
- No web server unless ``web_port`` is given, so several workers fit on one host.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import faust

from eunomia.config import KafkaSettings, Settings

__all__ = ["PartitionedTable", "create_app", "flush_tables", "input_topic", "partitioned_table",
           "run_worker", "tables_ready"]


def _ssl_context(kafka: KafkaSettings) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.ssl_certfile:
        ctx.load_cert_chain(str(kafka.ssl_certfile),
                            str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None)
    return ctx


def broker_credentials(kafka: KafkaSettings) -> faust.types.auth.CredentialsT | None:
    """aiokafka's view of KafkaSettings' security fields (librdkafka's is ``librdkafka()``)."""
    proto = kafka.security_protocol
    if proto == "PLAINTEXT":
        return None
    if proto == "SSL":
        return faust.SSLCredentials(_ssl_context(kafka))
    password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return faust.SASLCredentials(
        username=kafka.sasl_username, password=password,
        mechanism=kafka.sasl_mechanism or "PLAIN",
        ssl_context=_ssl_context(kafka) if proto == "SASL_SSL" else None)


def create_app(app_id: str, settings: Settings, *, store: str = "memory://",
               web_port: int | None = None, datadir: Path | None = None,
               **overrides: Any) -> faust.App:
    """One faust App for processor ``app_id`` configured from ``settings``."""
    kafka = settings.kafka
    broker = ";".join(f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(","))
    conf: dict[str, Any] = dict(
        broker=broker,
        broker_credentials=broker_credentials(kafka),
        store=store,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        # throughput: large fetches and a deep stream buffer; commits every 2 s
        broker_max_poll_records=2000,
        consumer_max_fetch_size=4 * 1024 * 1024,
        stream_buffer_maxsize=8192,
        stream_wait_empty=False,
        broker_commit_interval=2.0,
        broker_session_timeout=kafka.group_session_timeout_s,
        broker_heartbeat_interval=min(3.0, kafka.group_session_timeout_s / 3),
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        producer_acks=-1,
        table_cleanup_interval=30.0,
        # a changelog or internal topic this worker just created is missing from
        # the consumer's metadata until the next refresh; aiokafka's default of
        # 5 min left workers on a new broker unready for minutes
        consumer_metadata_max_age_ms=5000,
        producer_metadata_max_age_ms=5000,
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
        logging_config=None,
    )
    if datadir is not None:
        conf["datadir"] = str(datadir)
    conf.update(overrides)
    return faust.App(f"{settings.topics.prefix}{app_id}", **conf)


async def flush_tables(app: faust.App) -> None:
    """Wait until every table change made so far is acknowledged by the broker.

    Table writes go to their changelog through faust's producer buffer, which
    faust flushes before it commits offsets, but its flush gives up after 0.1 s
    without progress and leaves the rest queued: under load a commit could pass
    events whose state changes were still queued, and a worker killed then lost
    them (its successor restored older state and read on from the newer offset).
    Agents call this before their batch is acknowledged."""
    producer = app.producer
    while producer.buffer.size:
        await producer.buffer.flush()
    await producer.flush()


def tables_ready(app: faust.App) -> bool:
    """No rebalance or table recovery under way: table contents are this
    worker's current partitions'. Call it on the app's event loop only (see
    ``run_worker``: touching ``app.tables`` from another thread stalls the worker)."""
    return not (app.rebalancing or app.in_recovery) and app.tables.recovery.completed.is_set()


def input_topic(app: faust.App, settings: Settings, *names: str, **kw: Any) -> faust.TopicT:
    """The prefixed topics ``names`` (logical names of docs/architecture.md) as one faust topic
    of raw bytes; ``kw`` goes to ``app.topic`` (e.g. ``internal=True``)."""
    return app.topic(*(settings.topic(n) for n in names), key_type=bytes, value_type=bytes,
                     key_serializer="raw", value_serializer="raw", **kw)


class PartitionedTable(faust.Table):
    """A Table whose changes go to an explicit changelog partition.

    faust picks the partition of "the current event", which is wrong when an
    agent processes a batch (``take_events``) or a timer changes state: set
    ``write_partition`` to the input partition of the event being applied.
    """

    write_partition: int | None = None

    def partition_for_key(self, key: Any) -> int | None:
        if self.write_partition is not None:
            return self.write_partition
        return super().partition_for_key(key)


def partitioned_table(app: faust.App, name: str, *, partitions: int | None = None,
                      help: str = "") -> PartitionedTable:
    """A str-keyed PartitionedTable of JSON values registered on ``app`` (faust
    serializes keys and values of untyped tables as JSON)."""
    table = app.tables.add(PartitionedTable(
        app, name=name, default=None, key_type=str, value_type=None,
        partitions=partitions, help=help))
    return table  # type: ignore[return-value]


def run_worker(app: faust.App, settings: Settings, *, loglevel: str = "WARNING") -> None:
    """Run ``app`` as a worker in this process until SIGTERM/SIGINT.

    With ``settings.metrics_port`` set, ``/healthz``, ``/readyz`` (table recovery
    done, so the worker is consuming) and ``/metrics`` are served on 127.0.0.1.
    """
    endpoints = None
    if settings.metrics_port:
        import threading

        from eunomia.endpoints import Endpoints

        # /readyz is answered on the HTTP server's thread, which must not touch
        # faust's services: the first access to ``app.tables.recovery`` creates it
        # and binds the table manager to that thread's event loop, after which the
        # worker waits forever for its tables (it stalled at start-up ~1 in 10).
        # The app's own loop copies recovery's state into a thread-safe flag.
        ready = threading.Event()
        endpoints = Endpoints(settings.metrics_port, ready=ready.is_set).start()

        @app.timer(0.5)
        async def _ready() -> None:
            if app.tables.recovery.completed.is_set():
                ready.set()

        @app.timer(5.0)
        async def _beat() -> None:
            endpoints.beat()

    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - optional speed-up
        pass
    _install_stack_dumps()
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        if endpoints is not None:
            endpoints.stop()


def _install_stack_dumps() -> None:
    """SIGUSR2 writes every thread's stack to stderr (mode's worker already logs
    every asyncio task's stack on SIGUSR1): a worker that stops making progress
    can be asked where it waits without killing it."""
    import faulthandler
    import signal
    import sys

    faulthandler.register(signal.SIGUSR2, file=sys.stderr, all_threads=True)
