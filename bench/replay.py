"""Record and replay: replay to Kafka and offline replay (raw and enriched
recordings through the default rule pack), as ratios to fastavro reading the
same file in the same run. Goal: replay to Kafka >= 100k events/s.

A local broker is started unless ``--bootstrap`` is given.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

import fastavro

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Figure, bench_args, best_rate, peak_rss_mb, report
from eunomia.config import KafkaSettings, Settings, TopicSettings
from eunomia.processors.enrich.enricher import Enricher
from eunomia.processors.replay.recording import RecordedMessage, RecordingReader, RecordingWriter
from eunomia.schemas import AvroCodec

BENCH = "replay"


def make_recordings(n: int, work: Path) -> tuple[Path, Path]:
    """A raw recording (containers + raw events of the enrich bench's workload)
    and the enriched recording the live enricher would produce from it."""
    from tests.support.raw_records import workload

    codec = AvroCodec()
    recs, events = workload(n, hosts=6, containers=24)
    raw, enriched = work / "raw.avro", work / "enriched.avro"
    enricher = Enricher()
    topics = {"raw": "bench.raw.events", "c": "bench.containers", "e": "bench.enriched.events"}
    logical = {topics["raw"]: "raw.events", topics["c"]: "containers", topics["e"]: "enriched.events"}
    with RecordingWriter(raw, [topics["raw"], topics["c"]], logical=logical) as rw, \
            RecordingWriter(enriched, [topics["e"]], logical=logical) as ew:
        ts = 1_700_000_000_000
        off = 0

        def put_enriched(outs: list) -> None:
            nonlocal off
            for key, rec in outs:
                ew.write(RecordedMessage(topics["e"], 0, off, ts, codec.encode("enriched_event", rec),
                                         key.encode()))
                off += 1

        for i, r in enumerate(recs):
            key = f"{r['host_id']}/{r['cgroup_id']}".encode()
            rw.write(RecordedMessage(topics["c"], 0, i, ts, codec.encode("container", r), key))
            put_enriched(enricher.on_container(key.decode(), r))
        for i, e in enumerate(events):
            rw.write(RecordedMessage(topics["raw"], i % 6, i, ts + i // 100,
                                     codec.encode("raw_event", e), e["host_id"].encode(),
                                     [("eunomia.producer", b"bench")]))
            put_enriched(enricher.on_raw_event(e))
        for key in list(enricher.pending):
            put_enriched(enricher.release_key(key))
    return raw, enriched


def fastavro_read(path: Path) -> int:
    with path.open("rb") as fo:
        return sum(1 for _ in fastavro.reader(fo))


def our_read(path: Path) -> int:
    return sum(len(b) for b in RecordingReader(path).blocks())


def offline(path: Path) -> int:
    from eunomia.processors.replay.offline import replay_offline
    from eunomia.processors.rules import load_files, pack_files

    res = replay_offline(path, load_files(pack_files()))
    return sum(res.messages.values())


def kafka_figures(bootstrap: str, raw: Path, n_msgs: int, base: float, quick: bool) -> list[Figure]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from eunomia.processors.replay.to_kafka import replay_to_kafka

    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap),
                        topics=TopicSettings(prefix=f"bench{uuid.uuid4().hex[:6]}.", partitions=6))
    admin = AdminClient(settings.kafka.librdkafka())
    topic = settings.topic("replay")
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result(30)
    best = 0.0
    for _ in range(1 if quick else 3):
        stats = replay_to_kafka(settings, raw, topic=topic)
        assert stats.messages == n_msgs
        best = max(best, stats.rate)
    return [Figure(BENCH, "replay to Kafka (--speed max)", best, base, "fastavro read",
                   goal=">= 100k events/s")]


def main() -> None:
    p = bench_args(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--bootstrap")
    args = p.parse_args()
    n = 50_000 if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        raw, enriched = make_recordings(n, work)
        print(f"recordings of {n:,} raw events built in {time.perf_counter() - t0:.1f} s "
              f"({raw.stat().st_size / 1e6:.1f} MB raw, {enriched.stat().st_size / 1e6:.1f} MB enriched)")
        reps = 1 if args.quick else 3
        n_raw = RecordingReader(raw).scan()
        base_raw = best_rate(lambda: fastavro_read(raw), reps)
        base_enr = best_rate(lambda: fastavro_read(enriched), reps)
        figures = [
            Figure(BENCH, "read recording (CRC-checked)", best_rate(lambda: our_read(raw), reps),
                   base_raw, "fastavro read"),
            Figure(BENCH, "offline replay, enriched recording, default pack",
                   best_rate(lambda: offline(enriched), 1), base_enr, "fastavro read"),
            Figure(BENCH, "offline replay, raw recording (enrich + pack)",
                   best_rate(lambda: offline(raw), 1), base_raw, "fastavro read"),
        ]
        kafka = None
        bootstrap = args.bootstrap
        if not bootstrap:
            from eunomia.config import LocalKafkaSettings
            from eunomia.kafka.local_broker import LocalKafka
            from tests.support.ports import free_port_block

            s = LocalKafkaSettings()
            kafka = LocalKafka(work / "kafka", s.cache_dir, port=free_port_block(), heap="512m")
            kafka.start()
            bootstrap = kafka.bootstrap
        try:
            figures += kafka_figures(bootstrap, raw, n_raw, base_raw, args.quick)
        finally:
            if kafka is not None:
                kafka.stop()
    report(figures, args.json)
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
