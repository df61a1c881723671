"""Rule engine throughput with the default pack over generated enriched events:
offline against fastavro decoding the same events, and through a rules worker
against a no-op faust agent on the same topic; plus the worker's peak RSS and the
offline engine's memory as windows expire. The events are mostly benign, from
240 containers on 12 hosts, with a few percent feeding stateful rules.

    .venv/bin/python bench/rules.py [--quick] [--events N] [--json FILE]
"""

from __future__ import annotations

import gc
import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Figure, bench_args, report  # noqa: E402
from eunomia.config import KafkaSettings, Settings, TopicSettings  # noqa: E402

BENCH = "rules"
STEP_NS = 10_000_000  # event time between consecutive events
T0_NS = 1_700_000_000 * 10**9


def _settings(bootstrap: str, prefix: str) -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap),
                    topics=TopicSettings(prefix=prefix, partitions=3))


# -- workload -------------------------------------------------------------------------------

def _event(i: int, rng: random.Random, hosts: int, containers: int) -> dict[str, Any]:
    """Event ``i`` of the workload; the mix is described in the module docstring."""
    from tests.support.enriched_events import ev, parent

    c = rng.randrange(containers)
    host = f"host-{c % hosts}"
    ctr = f"ctr-{c:04d}"
    t = (T0_NS + i * STEP_NS) / 1e9
    common: dict[str, Any] = {"container": ctr, "host": {"id": host, "boot_id": "b1"},
                              "eid": f"{host}:b1:e{i}", "exec_id": f"{ctr}-app", "name": "app"}
    r = rng.random()
    if r < 0.40:
        return ev("open", t, file={"path": f"/srv/data/{rng.randrange(500)}"}, **common)
    if r < 0.55:
        return ev("open", t, file={"path": f"/var/cache/app/{rng.randrange(50)}", "write": True},
                  **common)
    if r < 0.75:
        return ev("connect", t, dport=443, daddr=f"10.1.{c % 250}.{rng.randrange(250)}", **common)
    if r < 0.88:
        return ev("exec", t, executable="/usr/bin/app-helper",
                  **{**common, "name": "app-helper", "exec_id": f"{ctr}-h{i}"})
    if r < 0.93:
        return ev("exit", t, **common)
    if r < 0.95:  # failed credential opens (threshold)
        return ev("open", t, file={"path": "/etc/shadow"}, outcome="failure", **common)
    if r < 0.97:  # port spread (distinct)
        return ev("connect", t, dport=8000 + rng.randrange(40), **common)
    if r < 0.985:  # recon commands (distinct, temporal)
        name = rng.choice(["id", "uname", "whoami", "ps", "env"])
        return ev("exec", t, **{**common, "name": name, "exec_id": f"{ctr}-r{i}"})
    if r < 0.995:  # a shell (single rule; reverse-shell and long-lived-shell sequences)
        return ev("exec", t, **{**common, "name": "sh", "exec_id": f"{ctr}-sh{i}"})
    # a process in a shell's tree connecting out
    tree = [parent("sh", f"{ctr}-sh{i - rng.randrange(1, 200)}", 50), parent("runc", "p0")]
    return ev("connect", t, dport=4444, ancestors=tree, **common)


def workload(n: int, *, hosts: int = 12, containers: int = 240, seed: int = 7
             ) -> list[tuple[bytes, bytes]]:
    """(key, Avro single-object bytes) of n events in event-time order; keys are
    the enrich worker's ``host/container``."""
    from eunomia.schemas import AvroCodec

    codec = AvroCodec()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        e = _event(i, rng, hosts, containers)
        out.append((f"{e['host']['id']}/{e['container']['id']}".encode(),
                    codec.encode("enriched_event", e)))
    return out


# -- offline ----------------------------------------------------------------------------------

def rss_mb() -> float:
    """Resident set size now (not the peak)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _decoded(values: list[bytes], chunk: int) -> Iterator[list[dict[str, Any]]]:
    from eunomia.schemas import AvroCodec

    dec = AvroCodec().decode
    for i in range(0, len(values), chunk):
        yield [dec(v, "enriched_event") for v in values[i:i + chunk]]


def offline(values: list[bytes], repeats: int) -> dict[str, float]:
    """Engine-only rate (best of ``repeats`` passes), state and RSS as time moves on."""
    from eunomia.processors.rules import Engine, load_files, pack_files

    ruleset = load_files(pack_files())
    best = 0.0
    mem: dict[str, float] = {}
    for rep in range(repeats):
        engine = Engine(ruleset, lateness_ns=2_000_000_000)
        busy = 0.0
        alerts = 0
        quarter = len(values) // 4
        for chunk in _decoded(values, 25_000):
            t0 = time.perf_counter()
            for e in chunk:
                alerts += len(engine.process(e))
            busy += time.perf_counter() - t0
            done = engine.stats["events"]
            if rep == 0 and "rss_quarter" not in mem and done >= quarter:
                del chunk
                gc.collect()
                mem["rss_quarter"], mem["state_quarter"] = rss_mb(), engine.state_size()
        best = max(best, engine.stats["events"] / busy)
        if rep == 0:
            gc.collect()
            mem["rss_end"], mem["state_end"] = rss_mb(), engine.state_size()
            alerts += len(engine.flush()) + len(engine.advance_watermark(2**62))
            gc.collect()
            mem["rss_expired"], mem["state_expired"] = rss_mb(), engine.state_size()
            mem["alerts"] = alerts
        del engine
        gc.collect()
    return {"rate": best, **mem}


def fastavro_rate(values: list[bytes], repeats: int) -> float:
    """fastavro's schemaless_reader over the same events' bodies (header stripped)."""
    from fastavro import schemaless_reader

    from eunomia.schemas import AvroCodec

    parsed = AvroCodec().store.parsed("enriched_event")
    best = 0.0
    for _ in range(repeats):
        n = 0
        busy = 0.0
        for i in range(0, len(values), 25_000):
            part = values[i:i + 25_000]
            t0 = time.perf_counter()
            out = [schemaless_reader(io.BytesIO(v[10:]), parsed, None) for v in part]
            busy += time.perf_counter() - t0
            n += len(out)
            del out
        best = max(best, n / busy)
    return best


# -- workers ----------------------------------------------------------------------------------

def role_main(role: str, bootstrap: str, prefix: str, n: int, result: Path) -> None:
    """Inside a worker process: build the app, time first..N-th event, write JSON, exit."""
    import faust

    from eunomia.processors.runtime.app import create_app, run_worker

    settings = _settings(bootstrap, prefix)
    if role == "rules":  # noop and noop2 are the same agent (two consumer groups)
        from eunomia.processors.workers import rules as rules_worker

        app = rules_worker.RulesWorker(settings).app

        def count() -> int:
            return int(rules_worker.EVALUATED._value.get())
    else:
        app = create_app(f"bench-{role}", settings)
        seen = {"n": 0}
        source = app.topic(settings.topic("enriched.events"), key_type=bytes, value_type=bytes)

        @app.agent(source)
        async def noop(stream: faust.StreamT) -> None:
            async for batch in stream.take_events(2000, within=0.1):
                seen["n"] += len(batch)

        def count() -> int:
            return seen["n"]

    t: dict[str, float] = {}
    started = result.with_suffix(".started")

    @app.timer(0.02)
    async def watch() -> None:
        c = count()
        if c and "first" not in t:
            t["first"] = time.perf_counter()
            t["c0"] = c
            started.write_text("started\n")
        if c >= n and "done" not in t:
            t["done"] = time.perf_counter()
            rate = (c - t["c0"]) / (t["done"] - t["first"])
            result.write_text(json.dumps({
                "rate": rate, "events": c,
                "rss_mb": peak_rss_of_this_process_mb()}))
            os.kill(os.getpid(), signal.SIGTERM)

    run_worker(app, settings, loglevel="ERROR")


def peak_rss_of_this_process_mb() -> float:
    """VmHWM: unlike ``ru_maxrss``, which a child inherits from its parent across
    fork and exec (here the parent holds the generated events), it starts anew
    with the worker's own address space."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_role(role: str, bootstrap: str, prefix: str, n: int, workdir: Path, tries: int = 3) -> dict:
    """One worker process for ``role``; a worker that has not seen its first
    event within 180 s (faust workers were seen to hang at start-up now and then
    on this host) is replaced by a fresh one. Once started it gets as long as
    a run at 100 events/s would take."""
    result = workdir / f"{role}.json"
    started = result.with_suffix(".started")
    cmd = [sys.executable, __file__, "--role", role, "--bootstrap", bootstrap, "--prefix", prefix,
           "--events", str(n), "--result", str(result)]
    for attempt in range(1, tries + 1):
        log_path = workdir / f"{role}-{attempt}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 180
                while proc.poll() is None and not started.exists() and time.monotonic() < deadline:
                    time.sleep(0.5)
                if started.exists():
                    proc.wait(600 + n / 100)
                else:
                    print(f"{role} worker saw no event in 180 s (try {attempt}); see {log_path}")
            except subprocess.TimeoutExpired:
                print(f"{role} worker gave no result in time (try {attempt}); see {log_path}")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if result.exists():
            return json.loads(result.read_text())
    raise SystemExit(f"{role} worker gave no result; see the logs in {workdir}")


def publish(settings: Settings, items: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    p = Producer({**settings.kafka.librdkafka(), "linger.ms": 20, "batch.size": 1 << 20,
                  "compression.type": "lz4", "queue.buffering.max.messages": 500_000})
    topic = settings.topic("enriched.events")
    for k, v in items:
        while True:
            try:
                p.produce(topic, v, k)
                break
            except BufferError:
                p.poll(0.05)
    if p.flush(120):
        raise SystemExit("enriched events not acknowledged")


# -- main --------------------------------------------------------------------------------------

def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def main() -> None:
    p = bench_args(__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--bootstrap")
    p.add_argument("--no-worker", action="store_true", help="offline figures only (no Kafka)")
    p.add_argument("--role", help=argparse_hidden())
    p.add_argument("--prefix", help=argparse_hidden())
    p.add_argument("--result", type=Path, help=argparse_hidden())
    args = p.parse_args()
    if args.role:
        role_main(args.role, args.bootstrap, args.prefix, args.events, args.result)
        return
    n = 50_000 if args.quick else args.events
    items = workload(n)
    values = [v for _, v in items]
    repeats = 1 if args.quick else 2
    # interleave ours and the baseline so drift of a noisy machine hits both
    base = fastavro_rate(values, repeats)
    off = offline(values, repeats)
    base = max(base, fastavro_rate(values, 1))
    figures = [
        Figure(BENCH, "offline engine (default pack)", off["rate"], base, "fastavro decode",
               goal=f"{n:,} events; >= 100k events/s on one core"),
        Figure(BENCH, "offline RSS at end vs at 1/4 of the stream", off["rss_end"], off["rss_quarter"],
               "RSS at 1/4", unit="MB", higher_is_better=False, goal="~1: flat as windows expire"),
        Figure(BENCH, "offline RSS after every window expired vs before", off["rss_expired"],
               off["rss_end"], "RSS before expiry", unit="MB", higher_is_better=False, goal="<= 1"),
        Figure(BENCH, "engine state entries at end vs at 1/4", off["state_end"], off["state_quarter"],
               "entries at 1/4", unit="entries", higher_is_better=False, goal="~1: bounded"),
        Figure(BENCH, "engine state entries after expiry vs before", off["state_expired"],
               off["state_end"], "entries before expiry", unit="entries", higher_is_better=False,
               goal="0"),
    ]
    print(f"offline: {int(off['alerts']):,} alerts over {n:,} events")
    report(figures, args.json)  # now: the worker half takes long and may fail on its own
    if not args.no_worker:
        report(worker_figures(args.bootstrap, items, n), args.json)


def worker_figures(bootstrap: str | None, items: list[tuple[bytes, bytes]], n: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        work = Path(tmp)
        kafka = None
        if not bootstrap:
            from eunomia.config import LocalKafkaSettings
            from eunomia.kafka.local_broker import LocalKafka
            from tests.support.ports import free_port_block

            s = LocalKafkaSettings()
            kafka = LocalKafka(work / "kafka", s.cache_dir, port=free_port_block(), heap="512m")
            kafka.start()
            bootstrap = kafka.bootstrap
        try:
            from eunomia.kafka.topics import create_topics

            prefix = f"benchr{uuid.uuid4().hex[:6]}."
            settings = _settings(bootstrap, prefix)
            create_topics(settings)
            publish(settings, items)
            # no-op before and after the rules worker, the faster one as the
            # baseline: load on this shared host drifts over minutes
            noop = run_role("noop", bootstrap, prefix, n, work)
            rules = run_role("rules", bootstrap, prefix, n, work)
            noop2 = run_role("noop2", bootstrap, prefix, n, work)
            print(f"no-op agent: {noop['rate']:,.1f} events/s before the rules worker, "
                  f"{noop2['rate']:,.1f} after")
            if noop2["rate"] > noop["rate"]:
                noop = noop2
        finally:
            if kafka is not None:
                kafka.stop()
    return [
        Figure(BENCH, "rules worker vs no-op faust agent", rules["rate"], noop["rate"],
               "no-op faust agent", goal=f"{n:,} events; ratio >= 0.5"),
        Figure(BENCH, "rules worker peak RSS", rules["rss_mb"], noop["rss_mb"], "no-op faust worker",
               unit="MB", higher_is_better=False),
    ]


if __name__ == "__main__":
    main()
