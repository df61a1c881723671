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
from tests.support import kafka_io, raw_records
from tests.support.raw_records import Host, container_record, podman_path
from tests.support.workers import workers


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




def _container_with_events(settings: Settings, host: str, cg: int, cid: str) -> list:
    """Topics, a container record, and 20 raw events of that container (not yet sent)."""
    create_topics(settings)
    kafka_io.publish(settings, "containers", [(f"{host}/{cg}".encode(), kafka_io.CODEC.encode(
        "container", container_record(host, cg, cid, name=f"{host}-app")))])
    h = Host(host)
    return [h.event("open", pid=700 + i, comm="app", cgroup_id=cg, cgroup_path=podman_path(cid),
                    payload=raw_records.open_payload(f"/{host}/{i}")) for i in range(20)]

def _delete_before(settings: Settings, topic: str, partition: int, offset: int) -> None:
    """What retention does to a partition, now."""
    admin = AdminClient(settings.kafka.librdkafka())
    for fut in admin.delete_records([TopicPartition(topic, partition, offset)]).values():
        fut.result(30)


def _enrich_until(settings: Settings, workdir: Path, want: set[int], partition: int,
                  commit: int) -> tuple[set[int], int, str]:
    """A worker's run until every seq in ``want`` is enriched and its group's
    commit reaches ``commit``: (enriched seqs, committed offset, worker log)."""
    topic, group = settings.topic("raw.events"), f"{settings.topics.prefix}enrich"
    with workers(settings, "enrich", workdir):
        out = kafka_io.consume(settings, "enriched.events", timeout=120, until=lambda got: want <= {
            v["event"]["seq"] for _, v, _, _ in got})
        committed = _wait_committed(settings, group, topic, partition, commit)
    log = "".join(p.read_text(errors="replace") for p in workdir.glob("enrich-*.log"))
    return {v["event"]["seq"] for _, v, _, _ in out}, committed, log


def test_offsets_deleted_before_they_were_read_are_given_up_loudly_and_commits_go_on(
        settings: Settings, tmp_path: Path) -> None:
    events = _container_with_events(settings, "h-hole", 7400, "6" * 64)
    first, second = events[:10], events[10:]
    topic, group = settings.topic("raw.events"), f"{settings.topics.prefix}enrich"

    with workers(settings, "enrich", tmp_path / "a"):
        kafka_io.publish(settings, "raw.events", kafka_io.raw_items(first))
        raw = kafka_io.consume(settings, "raw.events", decode="raw_event", timeout=30,
                               until=lambda got: len(got) >= len(first))
        partition = raw[0][3]
        base = _wait_committed(settings, group, topic, partition, 10)
        assert base == 10, f"the first worker committed {base}, not 10"

    # while no worker runs: ten more events, and the first five of them deleted unread
    kafka_io.publish(settings, "raw.events", kafka_io.raw_items(second))
    _delete_before(settings, topic, partition, 15)

    want = {e["seq"] for e in second[5:]}
    seqs, committed, log = _enrich_until(settings, tmp_path / "b", want, partition, 20)
    assert want <= seqs, f"events after the deleted range not enriched: {sorted(want - seqs)}"
    assert not seqs & {e["seq"] for e in second[:5]}, "a deleted event came out"
    assert committed == 20, f"the commit stopped at {committed}: the given-up range blocks it"
    assert "offsets 10..14 did not come back" in log, log[-3000:]


def test_a_group_without_a_committed_offset_starts_at_the_log_start(
        settings: Settings, tmp_path: Path) -> None:
    """Without a committed offset the guard asks the broker where the partition
    begins (faust neither seeks such a partition back nor says where it starts):
    records deleted before the first worker ran are not taken for a hole, and the
    ones after them are all read."""
    events = _container_with_events(settings, "h-start", 7401, "7" * 64)
    kafka_io.publish(settings, "raw.events", kafka_io.raw_items(events))
    raw = kafka_io.consume(settings, "raw.events", decode="raw_event", timeout=30,
                           until=lambda got: len(got) >= len(events))
    partition = raw[0][3]
    _delete_before(settings, settings.topic("raw.events"), partition, 5)

    want = {e["seq"] for e in events[5:]}
    seqs, committed, log = _enrich_until(settings, tmp_path / "w", want, partition, 20)
    assert want <= seqs and not seqs & {e["seq"] for e in events[:5]}
    assert committed == 20
    assert "missing" not in log and "log start is unknown" not in log, log[-3000:]
