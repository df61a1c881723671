"""Enrich throughput per worker vs a no-op faust agent and a bare confluent-kafka
consumer reading the same generated raw.events topic in the same run.

A local broker is started unless ``--bootstrap`` is given. Each faust role runs
as its own worker process (one worker, 3 partitions) and times itself from its
first event to its N-th, so start-up and rebalancing are not counted; the
enrich figure includes decoding, the join, lineage and producing
enriched.events. Peak RSS of each worker is reported.

    .venv/bin/python bench/enrich.py [--quick] [--events N] [--json FILE]
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Figure, bench_args, report  # noqa: E402
from eunomia.config import KafkaSettings, Settings, TopicSettings  # noqa: E402


def _settings(bootstrap: str, prefix: str) -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap),
                    topics=TopicSettings(prefix=prefix, partitions=3))


def _vm_hwm_mb() -> float:
    """This process's own peak RSS: ru_maxrss would report the parent's peak
    when that was higher (it is inherited across fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def role_main(role: str, bootstrap: str, prefix: str, n: int, result: Path) -> None:
    """Inside a worker process: build the app, time first..N-th event, write JSON, exit."""
    import faust

    from eunomia.processors.runtime.app import create_app, run_worker
    from eunomia.processors.workers.enrich import EnrichWorker

    settings = _settings(bootstrap, prefix)
    if role == "enrich":
        worker = EnrichWorker(settings)
        app = worker.app
        stats, dlq = worker.enricher.stats, worker.dlq

        def count() -> int:
            return stats["events"] + stats["syscalls"] + dlq.count
    else:
        app = create_app("bench-noop", settings)
        seen = {"n": 0}
        source = app.topic(settings.topic("raw.events"), key_type=bytes, value_type=bytes)

        @app.agent(source)
        async def noop(stream: faust.StreamT) -> None:
            async for batch in stream.take_events(2000, within=0.1):
                seen["n"] += len(batch)

        def count() -> int:
            return seen["n"]

    t: dict[str, float] = {}

    @app.timer(0.02)
    async def watch() -> None:
        c = count()
        if c and "first" not in t:
            t["first"] = time.perf_counter()
            t["c0"] = c
        if c >= n and "done" not in t:
            t["done"] = time.perf_counter()
            await app.producer.flush()
            t["flushed"] = time.perf_counter()
            rate = (c - t["c0"]) / (t["flushed"] - t["first"])
            result.write_text(json.dumps({
                "rate": rate, "events": c,
                "rss_mb": _vm_hwm_mb()}))
            os.kill(os.getpid(), signal.SIGTERM)

    run_worker(app, settings, loglevel="ERROR")


def run_role(role: str, bootstrap: str, prefix: str, n: int, workdir: Path) -> dict:
    result = workdir / f"{role}.json"
    cmd = [sys.executable, __file__, "--role", role, "--bootstrap", bootstrap, "--prefix", prefix,
           "--events", str(n), "--result", str(result)]
    with (workdir / f"{role}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        try:
            proc.wait(600)
        finally:
            if proc.poll() is None:
                proc.kill()
    if not result.exists():
        raise SystemExit(f"{role} worker gave no result; see {workdir / (role + '.log')}")
    return json.loads(result.read_text())


def bare_consumer_rate(settings: Settings, n: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"bench-bare-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "fetch.max.bytes": 4 * 1024 * 1024})
    name = settings.topic("raw.events")
    parts = c.list_topics(name, timeout=10).topics[name].partitions
    c.assign([TopicPartition(name, p, 0) for p in parts])
    got = 0
    t0 = None
    while got < n:
        msgs = c.consume(2000, 5.0)
        if not msgs:
            break
        if t0 is None:
            t0 = time.perf_counter()
            got -= 0
        got += sum(1 for m in msgs if not m.error())
    dt = time.perf_counter() - (t0 or time.perf_counter())
    c.close()
    return got / dt if dt > 0 else 0.0


def main() -> None:
    p = bench_args(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--bootstrap")
    p.add_argument("--role", help=argparse_hidden())
    p.add_argument("--prefix", help=argparse_hidden())
    p.add_argument("--result", type=Path, help=argparse_hidden())
    args = p.parse_args()
    if args.role:
        role_main(args.role, args.bootstrap, args.prefix, args.events, args.result)
        return
    n = 20_000 if args.quick else args.events
    with tempfile.TemporaryDirectory(prefix="bench-enrich-") as tmp:
        work = Path(tmp)
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
            figures = run(bootstrap, n, work)
        finally:
            if kafka is not None:
                kafka.stop()
    report(figures, args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def run(bootstrap: str, n: int, work: Path) -> list[Figure]:
    from eunomia.kafka.topics import create_topics
    from tests.support import kafka_io
    from tests.support.raw_records import workload

    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = _settings(bootstrap, prefix)
    create_topics(settings)
    recs, events = workload(n, hosts=6, containers=24)
    kafka_io.publish(settings, "containers",
                     [(f"{r['host_id']}/{r['cgroup_id']}".encode(), kafka_io.CODEC.encode("container", r))
                      for r in recs])
    kafka_io.publish(settings, "raw.events", kafka_io.raw_items(events))
    del events
    bare = max(bare_consumer_rate(settings, n) for _ in range(2))
    noop = run_role("noop", bootstrap, prefix, n, work)
    enrich = run_role("enrich", bootstrap, prefix, n, work)
    goal = f"{n:,} events; goal >= 20k/s"
    return [
        Figure("enrich", "enrich vs no-op faust agent", enrich["rate"], noop["rate"], "no-op faust agent",
               goal="ratio >= 0.5; " + goal),
        Figure("enrich", "enrich vs bare consumer", enrich["rate"], bare, "bare confluent-kafka consumer",
               goal=goal),
        Figure("enrich", "worker peak RSS", enrich["rss_mb"], noop["rss_mb"], "no-op faust worker",
               unit="MB", higher_is_better=False),
    ]


if __name__ == "__main__":
    main()
