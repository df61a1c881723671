"""Fixtures shared by every test folder: a real local Apache Kafka, podman's
Docker-compatible API and a real schema registry (helpers: tests/support/).

One broker per test session on a free loopback port and a fresh data dir; it is
stopped when the session ends. ``EUNOMIA_TEST_BOOTSTRAP`` points the tests at an
already-running broker instead.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.config import KafkaSettings, Settings, TopicSettings
from tests.requirements import require
from tests.support.ports import free_port_block


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = os.environ.get("EUNOMIA_TEST_BOOTSTRAP")
    if env:
        yield env
        return
    from eunomia.config import LocalKafkaSettings
    from eunomia.kafka.local_broker import LocalKafka

    require(shutil.which("java") is not None, "needs Java 17 for the local Kafka broker")
    s = LocalKafkaSettings()
    data = tmp_path_factory.mktemp("kafka")
    kafka = LocalKafka(data, s.cache_dir, port=free_port_block(), version=s.version, heap="384m")
    kafka.start()
    _warm_up_group_coordinator(kafka.bootstrap)
    try:
        yield kafka.bootstrap
    finally:
        kafka.stop()


def _warm_up_group_coordinator(bootstrap: str) -> None:
    """Commit one consumer-group offset so __consumer_offsets exists before
    tests start several faust workers at once: on a brand-new broker their
    simultaneous first coordinator lookups were seen to stall start-up."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    p = Producer({"bootstrap.servers": bootstrap})
    p.produce("eunomia-warmup", b"x")
    p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "eunomia-warmup",
                  "enable.auto.commit": False})
    import time

    from confluent_kafka import KafkaException

    deadline = time.monotonic() + 60
    try:
        while True:  # the coordinator may still be moving in: NOT_COORDINATOR, then it settles
            try:
                c.commit(offsets=[TopicPartition("eunomia-warmup", 0, 1)], asynchronous=False)
                return
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        c.close()


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    """Settings pointing at the session broker with a per-test topic prefix, so
    tests never see each other's messages."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    return Settings(kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
                    topics=TopicSettings(prefix=prefix, partitions=3))


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def podman_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Docker-compatible API served by ``podman system service`` on a private
    unix socket; yields the DOCKER_HOST URL."""
    import subprocess
    import time

    from tests.requirements import require_podman

    require_podman()
    sock = tmp_path_factory.mktemp("podman") / "podman.sock"
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("podman system service did not start")
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A REAL registry speaking the Confluent REST API (Apicurio Registry, in-memory
    storage) on a free loopback port; yields the URL for ``schema_registry_url``.
    ``EUNOMIA_TEST_SCHEMA_REGISTRY`` points the tests at a running one instead."""
    env = os.environ.get("EUNOMIA_TEST_SCHEMA_REGISTRY")
    if env:
        yield env
        return
    from eunomia.kafka.schema_registry import LocalSchemaRegistry

    require(shutil.which("java") is not None, "needs Java 17 for the local schema registry")
    registry = LocalSchemaRegistry(tmp_path_factory.mktemp("schema-registry"),
                                   port=free_port_block())
    registry.start()
    try:
        yield registry.url
    finally:
        registry.stop()
