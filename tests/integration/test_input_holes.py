"""Input offsets that are gone before a worker reads them are given up loudly,
and the worker's commits go on past them (processors/offset_guard.py).

A real broker deletes the records (the same as retention running ahead of a
stopped worker); a real enrich worker finds its committed offset pointing
into the deleted range. The guard that re-reads offsets faust's stream skipped
must not wait for these forever: it seeks back for a while, then names the
range in an error, processes what follows and lets the commit move on."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from tests.unit.enrich import factory, kafka_io
from tests.unit.enrich.factory import Host, container_record, podman_path


def _committed(settings: Settings, group: str, topic: str, partition: int) -> int:
    c = Consumer({**settings.kafka.librdkafka(), "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


def _wait_committed(settings: Settings, group: str, topic: str, partition: int, offset: int,
                    timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    got = -1
    while time.monotonic() < deadline:
        got = _committed(settings, group, topic, partition)
        if got >= offset:
            return got
        time.sleep(0.5)
    return got


def test_offsets_deleted_before_they_were_read_are_given_up_loudly_and_commits_go_on(
        settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    h = Host("h-hole")
    cg, cid = 7400, "6" * 64
    kafka_io.publish(settings, "containers", [(f"h-hole/{cg}".encode(), kafka_io.CODEC.encode(
        "container", container_record("h-hole", cg, cid, name="hole-app")))])
    events = [h.event("open", pid=700 + i, comm="app", cgroup_id=cg, cgroup_path=podman_path(cid),
                      payload=factory.open_payload(f"/h/{i}")) for i in range(20)]
    first, second = events[:10], events[10:]
    topic, group = settings.topic("raw.events"), f"{settings.topics.prefix}enrich"

    with kafka_io.workers(settings, "enrich", tmp_path / "a"):
        kafka_io.publish(settings, "raw.events", kafka_io.raw_items(first))
        raw = kafka_io.consume(settings, "raw.events", decode="raw_event", timeout=30,
                               until=lambda got: len(got) >= len(first))
        partition = raw[0][3]
        base = _wait_committed(settings, group, topic, partition, 10)
        assert base == 10, f"the first worker committed {base}, not 10"

    # while no worker runs: ten more events, and the first five of them deleted unread
    kafka_io.publish(settings, "raw.events", kafka_io.raw_items(second))
    admin = AdminClient(settings.kafka.librdkafka())
    for fut in admin.delete_records([TopicPartition(topic, partition, 15)]).values():
        fut.result(30)

    with kafka_io.workers(settings, "enrich", tmp_path / "b"):
        want = {e["seq"] for e in second[5:]}
        out = kafka_io.consume(settings, "enriched.events", timeout=120, until=lambda got: want <= {
            v["event"]["seq"] for _, v, _, _ in got})
        committed = _wait_committed(settings, group, topic, partition, 20)
    seqs = {v["event"]["seq"] for _, v, _, _ in out}
    assert want <= seqs, f"events after the deleted range not enriched: {sorted(want - seqs)}"
    assert not seqs & {e["seq"] for e in second[:5]}, "a deleted event came out"
    assert committed == 20, f"the commit stopped at {committed}: the given-up range blocks it"
    log = "".join(p.read_text(errors="replace") for p in (tmp_path / "b").glob("enrich-*.log"))
    assert "offsets 10..14 did not come back" in log, log[-3000:]


def test_a_group_without_a_committed_offset_starts_at_the_log_start(
        settings: Settings, tmp_path: Path) -> None:
    """Without a committed offset the guard asks the broker where the partition
    begins (faust neither seeks such a partition back nor says where it starts):
    records deleted before the first worker ran are not taken for a hole, and the
    ones after them are all read."""
    create_topics(settings)
    h = Host("h-start")
    cg, cid = 7401, "7" * 64
    kafka_io.publish(settings, "containers", [(f"h-start/{cg}".encode(), kafka_io.CODEC.encode(
        "container", container_record("h-start", cg, cid, name="start-app")))])
    events = [h.event("open", pid=800 + i, comm="app", cgroup_id=cg, cgroup_path=podman_path(cid),
                      payload=factory.open_payload(f"/s/{i}")) for i in range(20)]
    kafka_io.publish(settings, "raw.events", kafka_io.raw_items(events))
    raw = kafka_io.consume(settings, "raw.events", decode="raw_event", timeout=30,
                           until=lambda got: len(got) >= len(events))
    topic, group, partition = settings.topic("raw.events"), f"{settings.topics.prefix}enrich", raw[0][3]
    admin = AdminClient(settings.kafka.librdkafka())
    for fut in admin.delete_records([TopicPartition(topic, partition, 5)]).values():
        fut.result(30)

    with kafka_io.workers(settings, "enrich", tmp_path / "w"):
        want = {e["seq"] for e in events[5:]}
        out = kafka_io.consume(settings, "enriched.events", timeout=120, until=lambda got: want <= {
            v["event"]["seq"] for _, v, _, _ in got})
        committed = _wait_committed(settings, group, topic, partition, 20)
    seqs = {v["event"]["seq"] for _, v, _, _ in out}
    assert want <= seqs and not seqs & {e["seq"] for e in events[:5]}
    assert committed == 20
    log = "".join(p.read_text(errors="replace") for p in (tmp_path / "w").glob("enrich-*.log"))
    assert "missing" not in log and "log start is unknown" not in log, log[-3000:]
