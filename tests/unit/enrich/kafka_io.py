"""Helpers for enrich integration/e2e tests and the bench: real worker processes,
publishing and reading topics with confluent-kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from eunomia.config import Settings
from eunomia.schemas import AvroCodec

CODEC = AvroCodec()
ROOT = Path(__file__).resolve().parents[3]


def worker_env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix,
            "EUNOMIA_TOPICS__PARTITIONS": str(settings.topics.partitions),
            "EUNOMIA_KAFKA__GROUP_SESSION_TIMEOUT_S": "10",  # a killed worker's partitions move on sooner
            "PYTHONUNBUFFERED": "1"}


def start_worker(settings: Settings, name: str, workdir: Path, *extra: str) -> subprocess.Popen:
    """``eunomia worker <name>`` as a child process (its own session, logs in workdir)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / f"{name}-{time.monotonic_ns()}.log").open("wb")
    return subprocess.Popen([sys.executable, "-m", "eunomia", "worker", name, *extra], cwd=workdir,
                            env=worker_env(settings), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def workers(settings: Settings, name: str, workdir: Path, n: int = 1) -> Iterator[list[subprocess.Popen]]:
    procs = [start_worker(settings, name, workdir) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            stop(p)


def producer(settings: Settings) -> Producer:
    return Producer({**settings.kafka.librdkafka(), "linger.ms": 5, "enable.idempotence": True})


def publish(settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes | None]]) -> int:
    p = producer(settings)
    n = 0
    for key, value in items:
        while True:
            try:
                p.produce(settings.topic(topic), key=key, value=value)
                break
            except BufferError:
                p.poll(0.1)
        n += 1
        if n % 10000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    return n


def raw_items(events: Iterable[dict[str, Any]], schema: str = "raw_event"
              ) -> Iterator[tuple[bytes, bytes]]:
    for ev in events:
        yield ev["host_id"].encode(), CODEC.encode(schema, ev)


def consume(settings: Settings, topic: str, *, until: Callable[[list[Any]], bool],
            timeout: float = 90.0, decode: str | None = "enriched_event") -> list[Any]:
    """All messages of a topic from the beginning until ``until(messages)`` or timeout.

    Items are (key, decoded value, headers) when ``decode`` names a schema."""
    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"test-{time.monotonic_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    name = settings.topic(topic)
    md = c.list_topics(name, timeout=10).topics[name]
    c.assign([TopicPartition(name, p, 0) for p in md.partitions])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            for m in c.consume(1000, 0.5):
                if m.error():
                    continue
                v = CODEC.decode(m.value(), expect=decode) if decode else m.value()
                out.append((m.key(), v, m.headers() or [], m.partition()))
    finally:
        c.close()
    return out
