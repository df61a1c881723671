"""Record and replay against the REAL broker: a recorded topic replayed into a
new topic and recorded again is the same stream (values, keys, headers, order);
damaged recordings fail with their position or replay only their readable part."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.processors.replay.record import record
from eunomia.processors.replay.recording import RecordedMessage, RecordingReader
from eunomia.processors.replay.to_kafka import ReplayError, replay_to_kafka

pytestmark = pytest.mark.kafka


def _topic(settings: Settings, name: str, partitions: int) -> str:
    full = f"{settings.topics.prefix}{name}"
    admin = AdminClient(settings.kafka.librdkafka())
    admin.create_topics([NewTopic(full, partitions, 1)])[full].result(30)
    return full


def _produce(settings: Settings, topic: str, n: int, ts0: int | None = None, gap_ms: int = 0) -> None:
    p = Producer({**settings.kafka.librdkafka(), "linger.ms": 5, "enable.idempotence": True})
    for i in range(n):
        key = None if i % 10 == 9 else f"host-{i % 4}".encode()
        headers = [("seq", str(i).encode()), ("nil", None)] if i % 3 == 0 else None
        kw = {"timestamp": ts0 + i * gap_ms} if ts0 is not None else {}
        p.produce(topic, f"value-{i}-".encode() * (1 + i % 5), key, headers=headers, **kw)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0


def _content(msgs: list[RecordedMessage]) -> list[tuple]:
    return [(m.value, m.key, m.headers) for m in msgs]


def _by_partition(msgs: list[RecordedMessage]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = defaultdict(list)
    for m in msgs:
        out[m.partition].append((m.value, m.key, m.headers))
    return dict(out)


def test_round_trip_single_partition_keeps_total_order(settings: Settings, tmp_path: Path) -> None:
    src, dst = _topic(settings, "src", 1), _topic(settings, "dst", 1)
    _produce(settings, src, 5000)
    first, second = tmp_path / "first.avro", tmp_path / "second.avro"
    stats = record(settings, [src], first, from_beginning=True, to_end=True)
    assert stats.messages == 5000 and stats.stopped_by == "end of topics"
    out = replay_to_kafka(settings, first, topic=dst)
    assert out.messages == 5000 and out.per_topic == {dst: 5000}
    assert record(settings, [dst], second, from_beginning=True, to_end=True).messages == 5000
    a, b = list(RecordingReader(first)), list(RecordingReader(second))
    assert _content(a) == _content(b)
    assert [m.offset for m in a] == list(range(5000))


def test_round_trip_pipeline_topic_keeps_partitions(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    src = settings.topic("raw.events")
    dst = _topic(settings, "copy", 3)
    _produce(settings, src, 3000)
    first, second = tmp_path / "first.avro", tmp_path / "second.avro"
    # logical name, --max-events
    stats = record(settings, ["raw.events"], first, from_beginning=True, max_events=3000)
    assert stats.messages == 3000 and set(stats.topics) == {src}
    assert RecordingReader(first).logical_topics == {src: "raw.events"}
    replay_to_kafka(settings, first, topic=dst, keep_partitions=True)
    record(settings, [dst], second, from_beginning=True, to_end=True)
    a, b = list(RecordingReader(first)), list(RecordingReader(second))
    assert len(b) == 3000
    assert _by_partition(a) == _by_partition(b)
    assert len(_by_partition(a)) == 3


def test_replay_without_topic_goes_to_the_logical_topic_of_today(settings: Settings,
                                                                 tmp_path: Path) -> None:
    create_topics(settings)
    _produce(settings, settings.topic("raw.events"), 200)
    rec = tmp_path / "r.avro"
    record(settings, ["raw.events"], rec, from_beginning=True, to_end=True)
    other = settings.model_copy(update={"topics": settings.topics.model_copy(
        update={"prefix": settings.topics.prefix + "b."})})
    with pytest.raises(ReplayError, match="do not exist"):
        replay_to_kafka(other, rec)
    create_topics(other)
    stats = replay_to_kafka(other, rec)
    assert stats.per_topic == {other.topic("raw.events"): 200}


def test_paced_replay_keeps_gaps_scaled(settings: Settings, tmp_path: Path) -> None:
    src, dst = _topic(settings, "paced", 1), _topic(settings, "paced-out", 1)
    _produce(settings, src, 11, ts0=1_700_000_000_000, gap_ms=100)  # 1 s of recorded time
    rec, again = tmp_path / "r.avro", tmp_path / "again.avro"
    record(settings, [src], rec, from_beginning=True, to_end=True)
    replay_to_kafka(settings, rec, topic=dst, speed=4.0)
    record(settings, [dst], again, from_beginning=True, to_end=True)
    ts = [m.timestamp_ms for m in RecordingReader(again)]
    # pacing never sends early: each gap is at least the recorded gap / speed
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    assert all(g >= 25 - 2 for g in gaps), gaps
    assert ts[-1] - ts[0] >= 250 - 2


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
           "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "eunomia", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_corrupt_recording_one_line_error_and_skip(settings: Settings, tmp_path: Path) -> None:
    src, dst = _topic(settings, "c-src", 1), _topic(settings, "c-dst", 1)
    _produce(settings, src, 4000)
    rec = tmp_path / "r.avro"
    r = _cli(settings, "record", src, "--out", str(rec), "--from-beginning", "--to-end")
    assert r.returncode == 0, r.stderr
    assert "4,000" in r.stdout  # the summary table
    reader = RecordingReader(rec)
    import fastavro

    with rec.open("rb") as fo:
        blocks = [(b.offset, b.size, b.num_records) for b in fastavro.block_reader(fo)]
    assert len(blocks) >= 3
    cut = tmp_path / "cut.avro"
    off, size, _ = blocks[-1]
    cut.write_bytes(rec.read_bytes()[: off + size // 2])
    r = _cli(settings, "replay", str(cut), "--to-kafka", "--topic", dst)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"block {len(blocks) - 1} (byte {off})" in lines[0] and "truncated" in lines[0]
    empty = tmp_path / "empty.avro"
    record(settings, [dst], empty, from_beginning=True, to_end=True)
    assert list(RecordingReader(empty)) == []  # nothing published before the error
    r = _cli(settings, "replay", str(cut), "--to-kafka", "--topic", dst, "--skip-corrupt")
    assert r.returncode == 0, r.stderr
    assert "skipped corrupt block" in r.stderr
    readable = sum(n for _, _, n in blocks[:-1])
    back = tmp_path / "back.avro"
    record(settings, [dst], back, from_beginning=True, to_end=True)
    assert _content(list(RecordingReader(back))) == _content(list(reader))[:readable]
