"""Garbage of many kinds interleaved with valid messages on every input topic of
the four real workers: one dead letter per garbage message per reader with its
reason, every valid message has its effect, and no worker dies or prints a
traceback.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from eunomia.commands.seccomp import read_profiles
from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.schemas import AvroCodec
from tests.support.ports import free_port_block

pytestmark = pytest.mark.kafka

N_GARBAGE = int(os.environ.get("EUNOMIA_BAD_INPUT_N", "10000"))  # per input topic
HOST, BOOT = "bi-host", "b1"
N_CONTAINERS = 20
N_RAW_EVENTS = 500  # seqs 1, 3, 5, ...: every even seq is a hole the health worker reports
N_SYSCALLS = 200
N_HEARTBEATS = 200
N_ENRICHED = 300
MARKER = "bi-marker"
CODEC = AvroCodec()
WORKERS = {
    "enrich": ["enrich", "--grace", "60"],
    "rules": ["rules", "--no-pack", "--rules", "{rules}"],
    "seccomp": ["seccomp", "--debounce", "1", "--max-wait", "5"],
    "health": ["health"],
}
# which workers read which input topic (docs/architecture.md; processors/workers/)
READERS = {"raw.events": ("enrich", "health"), "raw.syscalls": ("enrich",),
           "containers": ("enrich",), "enriched.events": ("rules", "seccomp"),
           "producer.health": ("health",)}
SCHEMA_OF = {"raw.events": "raw_event", "raw.syscalls": "syscall_counts", "containers": "container",
             "enriched.events": "enriched_event", "producer.health": "producer_health"}
RULE_FILE = f"""\
- rule: Bad-input test marker
  id: BI-1
  desc: One alert per enriched event of the marker process, so each valid input is counted.
  condition: process.name = {MARKER}
  output: "marker event %event.id"
  level: warning
  tags: [test]
"""


# -- valid records ---------------------------------------------------------------
def ns() -> dict[str, int]:
    return {"pid": 1, "mnt": 2, "net": 3, "user": 4, "uts": 5, "ipc": 6, "cgroup": 7}


def cgroup(k: int) -> int:
    return 1001 + k % N_CONTAINERS


def container_rec(k: int) -> dict[str, Any]:
    return {"host_id": HOST, "ts_ns": time.time_ns(), "container_id": f"ctr-{k}", "name": f"c{k}",
            "image": f"bi-img-{k}", "image_id": f"sha256:{k:064x}", "labels": {}, "runtime": "podman",
            "cgroup_path": None, "cgroup_id": cgroup(k)}


def raw_event_rec(k: int, ts0: int) -> dict[str, Any]:
    seq = 2 * k + 1
    return {"host_id": HOST, "boot_id": BOOT, "seq": seq, "ts_ns": ts0 + seq, "kind": "open",
            "pid": 500 + k, "tid": 500 + k, "ppid": 1, "uid": 0, "gid": 0, "comm": "loadgen",
            "cgroup_id": cgroup(k), "cgroup_path": None, "ns": ns(),
            "exec_id": f"{HOST}:{BOOT}:{500 + k}:1", "parent_exec_id": f"{HOST}:{BOOT}:1:1",
            "payload": {"path": f"/tmp/f{k}", "target_path": None, "flags": 0, "mode": 0, "retval": 3}}


def syscalls_rec(k: int, ts0: int) -> dict[str, Any]:
    return {"host_id": HOST, "boot_id": BOOT, "seq": k + 1, "ts_ns": ts0 + k, "interval_ns": 10**9,
            "pid": 700 + k, "comm": "worker", "cgroup_id": cgroup(k), "cgroup_path": None,
            "exec_id": f"{HOST}:{BOOT}:{700 + k}:1", "arch": "x86_64",
            "counts": [{"nr": 0, "count": 3}, {"nr": 1, "count": 2}], "fileio": []}


def heartbeat_rec(k: int) -> dict[str, Any]:
    return {"host_id": f"bi-hb-{k}", "boot_id": BOOT, "ts_ns": time.time_ns(), "started_ns": 1,
            "last_seq": 100 + k, "events_by_kind": {}, "drops_by_cause": {}, "spool_bytes": 0,
            "spool_messages": 0, "lost_ranges": [{"first": 10, "last": 10 + k}], "probes": []}


def enriched_rec(k: int) -> dict[str, Any]:
    return {
        "event": {"id": f"bi-direct:{k}", "kind": "syscall_counts", "category": "syscalls",
                  "ts_ns": time.time_ns(), "seq": k + 1},
        "host": {"id": "bi-direct-host", "boot_id": BOOT},
        "process": {"pid": 900 + k, "name": MARKER, "exec_id": f"bi-direct-host:{BOOT}:{900 + k}"},
        "user": {"id": 0, "group_id": 0},
        "container": {"id": f"bd-{k}", "image_name": f"bi-direct-{k}", "image_id": "sha256:beef"},
        "syscalls": {"arch": "x86_64", "interval_ns": 10**9,
                     "counts": [{"nr": 0, "count": 1}, {"nr": 60, "count": 1}]},
    }


# -- garbage -----------------------------------------------------------------------
@dataclass(frozen=True)
class Garbage:
    kind: str
    key: bytes | None
    value: bytes
    reasons: tuple[str, ...]  # error types a dead letter of this kind may carry
    readers: tuple[str, ...] | None = None  # the workers that cannot use it (None: all)


def garbage(topic: str, i: int, rng: random.Random, sample: bytes) -> Garbage:
    """The i-th unusable message for ``topic``; ``sample`` is a valid value of its schema."""
    key = [HOST.encode(), b"g-1", b"g-2", None][i % 4] if topic != "containers" \
        else f"{HOST}/g{i}".encode()
    body = rng.randbytes(rng.randint(1, 120))
    kinds: list[tuple[str, bytes, tuple[str, ...]]] = [
        ("random", bytes([rng.choice([b for b in range(256) if b not in (0x00, 0xC3)])]) + body,
         ("BadMagic",)),
        ("empty", b"", ("TruncatedMessage",)),
        ("bad-marker", b"\xc3\x02" + rng.randbytes(8) + body, ("BadMagic",)),
        ("unknown-fingerprint", b"\xc3\x01" + rng.randbytes(8) + body, ("UnknownSchema",)),
        ("short-header", b"\xc3\x01" + rng.randbytes(rng.randint(0, 7)), ("TruncatedMessage",)),
        ("confluent-no-registry", b"\x00" + rng.randbytes(4) + body, ("UnknownSchema",)),
        ("truncated", sample[:rng.randint(10, len(sample) - 1)], ("TruncatedMessage", "SchemaMismatch")),
        ("wrong-schema", WRONG[topic], ("UnknownSchema",)),
        ("trailing-bytes", sample + b"\x02\x04", ("SchemaMismatch",)),
        ("garbage-body", sample[:10] + body, ("TruncatedMessage", "SchemaMismatch")),
    ]
    if topic == "containers":  # its key is part of the contract (host_id/cgroup_id); a null
        # key cannot reach it: the broker rejects keyless records on a compacted topic
        kinds.append(("bad-key", sample, ("UnicodeDecodeError",)))
    if topic == "enriched.events":  # schema-valid, but no seccomp profile can hold it
        kinds += [("arch-unknown-to-libseccomp", odd_arch("sparc"), ("SyscallTableError",)),
                  ("arch-without-oci-name", odd_arch("mips"), ("SyscallTableError",))]
    kind, value, reasons = kinds[i % len(kinds)]
    if kind == "bad-key":
        key = b"\xff\xfe" + body[:8]
    readers = ("seccomp",) if kind.startswith("arch-") else None  # the rules worker can use it
    return Garbage(kind, key, value, reasons, readers)


def odd_arch(arch: str) -> bytes:
    rec = enriched_rec(0)
    rec["event"]["id"] = f"bi-arch:{arch}"
    rec["process"]["name"] = "bi-arch"
    rec["container"]["image_name"] = "bi-arch"
    rec["syscalls"]["arch"] = arch
    return CODEC.encode("enriched_event", rec)


# a valid record of another schema on each topic
WRONG = {
    "raw.events": CODEC.encode("syscall_counts", syscalls_rec(0, 1)),
    "raw.syscalls": CODEC.encode("raw_event", raw_event_rec(0, 1)),
    "containers": CODEC.encode("producer_health", heartbeat_rec(0)),
    "enriched.events": CODEC.encode("raw_event", raw_event_rec(0, 1)),
    "producer.health": CODEC.encode("container", container_rec(0)),
}


# -- workers -------------------------------------------------------------------------
@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[dict[str, Worker]]:
    """The four workers, each ready. A worker hung at start-up (seen now and then on
    this host with faust) is replaced before any input is sent, as ``eunomia up``
    does; from then on a restart is a failure."""
    create_topics(settings)
    rules = tmp_path / "bi-rules.yaml"
    rules.write_text(RULE_FILE)
    started: dict[str, Worker] = {}

    def spawn(name: str) -> Worker:
        port = free_port_block()
        env = {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
               "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix,
               "EUNOMIA_TOPICS__PARTITIONS": str(settings.topics.partitions),
               "EUNOMIA_METRICS_PORT": str(port), "COLUMNS": "200"}
        log = tmp_path / f"{name}.log"
        args = [a.replace("{rules}", str(rules)) for a in WORKERS[name]]
        with open(log, "ab") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "eunomia", "worker", *args], env=env,
                                    stdout=fh, stderr=subprocess.STDOUT)
        return Worker(name, proc, port, log)

    t0 = time.monotonic()
    try:
        for name in WORKERS:
            started[name] = spawn(name)
        tries = dict.fromkeys(WORKERS, 1)
        waiting = set(WORKERS)
        since = dict.fromkeys(WORKERS, time.monotonic())
        while waiting:
            for name in sorted(waiting):
                w = started[name]
                assert w.proc.poll() is None, f"{name} exited at start: {w.log.read_text()[-3000:]}"
                if w.ready():
                    waiting.discard(name)
                elif time.monotonic() - since[name] > 60:
                    if tries[name] == 3:
                        pytest.fail(f"{name} not ready after 3 tries: {w.log.read_text()[-3000:]}")
                    stop(w.proc)
                    started[name] = spawn(name)
                    tries[name] += 1
                    since[name] = time.monotonic()
            time.sleep(0.5)
        print(f"workers ready after {time.monotonic() - t0:.1f}s (tries: {tries})")
        yield started
    finally:
        for w in started.values():
            stop(w.proc)


# -- reading back ----------------------------------------------------------------------
def consume(settings: Settings, topic: str, until: Callable[[list[Any]], bool],
            timeout: float) -> list[Any]:
    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"verify-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([settings.topic(topic)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            out += [m for m in c.consume(10_000, 0.5) if m.error() is None]
    finally:
        c.close()
    return out


def scrape(port: int) -> dict[tuple[str, ...], float]:
    """A worker's eunomia samples: (name, worker, topic or rule) -> value summed
    over the other labels."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("eunomia_"):
                lab = sample.labels
                key = (sample.name, lab.get("worker", ""), lab.get("topic", lab.get("rule", "")))
                out[key] = out.get(key, 0.0) + sample.value
    return out


def header(msg: Any, name: str) -> str:
    return dict(msg.headers() or [])[name].decode()


def test_garbage_on_every_input_topic(settings: Settings, workers: dict[str, Worker]) -> None:
    pids = {n: w.proc.pid for n, w in workers.items()}
    t0 = time.monotonic()

    def phase(what: str) -> None:  # shown with a failure: where the time went
        print(f"{time.monotonic() - t0:7.1f}s {what}")

    rng = random.Random(9005)
    ts0 = time.time_ns()
    valid: dict[str, list[tuple[bytes, bytes]]] = {
        "containers": [(f"{HOST}/{cgroup(k)}".encode(), CODEC.encode("container", container_rec(k)))
                       for k in range(N_CONTAINERS)],
        "raw.events": [(HOST.encode(), CODEC.encode("raw_event", raw_event_rec(k, ts0)))
                       for k in range(N_RAW_EVENTS)],
        "raw.syscalls": [(HOST.encode(), CODEC.encode("syscall_counts", syscalls_rec(k, ts0)))
                         for k in range(N_SYSCALLS)],
        "producer.health": [(f"bi-hb-{k}".encode(), CODEC.encode("producer_health", heartbeat_rec(k)))
                            for k in range(N_HEARTBEATS)],
        "enriched.events": [(f"bi-direct-host/bd-{k}".encode(), CODEC.encode("enriched_event",
                                                                             enriched_rec(k)))
                            for k in range(N_ENRICHED)],
    }
    sent: dict[tuple[str, int, int], Garbage] = {}  # (topic, partition, offset) -> garbage
    failed: list[str] = []
    p = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True, "linger.ms": 20})

    def on_garbage(g: Garbage) -> Callable[[Any, Any], None]:
        def report(err: Any, msg: Any) -> None:
            if err is not None:
                failed.append(str(err))
            else:
                sent[(msg.topic(), msg.partition(), msg.offset())] = g
        return report

    def on_valid(err: Any, msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    for topic in READERS:  # containers first: the events after them find their container
        name = settings.topic(topic)
        good = valid[topic]
        sample = good[0][1]
        slots = set(rng.sample(range(N_GARBAGE + len(good)), len(good)))
        gi = vi = 0
        for slot in range(N_GARBAGE + len(good)):
            if slot in slots:  # valid ones keep their order (seqs are per host, in order)
                key, value = good[vi]
                vi += 1
                cb = on_valid
            else:
                g = garbage(topic, gi, rng, sample)
                gi += 1
                key, value, cb = g.key, g.value, on_garbage(g)
            while True:
                try:
                    p.produce(name, value, key, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.1)
        p.poll(0)
    assert p.flush(60) == 0 and not failed, failed
    assert len(sent) == N_GARBAGE * len(READERS)
    phase("input produced")

    # -- every garbage message is a dead letter of every worker reading its topic, with its reason
    want_dead = sum(len(g.readers or READERS[topic]) for (name, _, _), g in sent.items()
                    for topic in READERS if settings.topic(topic) == name)
    dead_msgs = consume(settings, "dlq", lambda got: len(got) >= want_dead, timeout=240)
    phase(f"{len(dead_msgs)} dead letters read")
    by_reader: dict[str, dict[tuple[str, int, int], Any]] = {n: {} for n in WORKERS}
    for m in dead_msgs:
        rec = CODEC.decode(m.value(), expect="dead_letter")
        src = (rec["topic"], rec["partition"], rec["offset"])
        assert src not in by_reader[rec["processor"]], f"two dead letters for {src}"
        by_reader[rec["processor"]][src] = (m, rec)
    for topic, readers in READERS.items():
        name = settings.topic(topic)
        for reader in readers:
            mine = {src: g for src, g in sent.items()
                    if src[0] == name and (g.readers is None or reader in g.readers)}
            got = {src: v for src, v in by_reader[reader].items() if src[0] == name}
            assert set(got) == set(mine), (
                f"{reader} on {topic}: {len(set(mine) - set(got))} garbage messages not in the DLQ, "
                f"{len(set(got) - set(mine))} dead letters of messages that were not garbage")
            wrong: Counter[str] = Counter()
            for src, (m, rec) in got.items():
                g = mine[src]
                assert rec["value"] == g.value and rec["key"] == g.key, f"{src} lost its bytes"
                etype = header(m, "eunomia-error-type")
                assert etype == rec["error_type"] and rec["error"]
                assert header(m, "eunomia-processor") == reader
                assert header(m, "eunomia-source") == f"{src[0]}/{src[1]}/{src[2]}"
                if etype not in g.reasons:
                    wrong[f"{g.kind}: {etype}: {rec['error'][:120]}"] += 1
            assert not wrong, f"{reader} on {topic}: unexpected reasons {dict(wrong)}"

    # -- every valid message had its effect
    # enrich: one enriched event per raw event and syscall record, with its container
    want_ids = {f"{HOST}:{BOOT}:e{2 * k + 1}": f"ctr-{k % N_CONTAINERS}" for k in range(N_RAW_EVENTS)}
    want_ids |= {f"{HOST}:{BOOT}:s{k + 1}": f"ctr-{k % N_CONTAINERS}" for k in range(N_SYSCALLS)}

    def enriched_ids(got: list[Any]) -> dict[str, str]:
        """event id -> container id of the enrich worker's output (not our garbage)."""
        out = {}
        for m in got:
            if (m.topic(), m.partition(), m.offset()) in sent:
                continue
            ev = CODEC.decode(m.value(), expect="enriched_event")
            if ev["host"]["id"] == HOST:
                assert ev["event"]["id"] not in out, f"{ev['event']['id']} enriched twice"
                out[ev["event"]["id"]] = ev["container"]["id"]
        return out

    # enriched.events also holds the garbage and the direct records: read until ours are all there
    def enrich_done(got: list[Any]) -> bool:
        return len(got) >= N_GARBAGE + N_ENRICHED + len(want_ids) and \
            set(enriched_ids(got)) >= set(want_ids)

    enriched_msgs = consume(settings, "enriched.events", enrich_done, timeout=120)
    phase("enriched events read")
    assert enriched_ids(enriched_msgs) == want_ids

    # rules: one BI-1 alert per direct enriched event; seccomp: a profile per image;
    # health: a gap per missing even seq and per heartbeat's lost range
    want_gaps = {(HOST, s, s, "raw.events seq") for s in range(2, 2 * N_RAW_EVENTS, 2)}
    want_gaps |= {(f"bi-hb-{k}", 10, 10 + k, "producer.health") for k in range(N_HEARTBEATS)}

    def summary(got: list[Any]) -> tuple[set[str], set[tuple[str, int, int, str]]]:
        marker, gaps = set(), set()
        for m in got:
            a = CODEC.decode(m.value(), expect="alert")
            if a["rule_id"] == "BI-1":
                marker.add(a["message"])
            elif a["rule_id"] == "producer-gap":
                f = a["fields"]
                gaps.add((a["host_id"], int(f["first_seq"]), int(f["last_seq"]), f["source"]))
        return marker, gaps

    def alerts_done(got: list[Any]) -> bool:
        marker, gaps = summary(got)
        return len(marker) >= N_ENRICHED and gaps >= want_gaps

    alerts = consume(settings, "alerts", alerts_done, timeout=120)
    phase("alerts read")
    marker, gaps = summary(alerts)
    assert marker == {f"marker event bi-direct:{k}" for k in range(N_ENRICHED)}
    assert gaps == want_gaps
    assert not [a for m in alerts if (a := CODEC.decode(m.value(), expect="alert"))["rule_id"]
                not in ("BI-1", "producer-gap")], "an alert no valid input asked for"

    # every alert, whichever worker raised it, is on alerts.ocsf too, as a finding of its id
    alert_ids = {m.key().decode() for m in alerts}
    ocsf = consume(settings, "alerts.ocsf", lambda got: {m.key().decode() for m in got} >= alert_ids,
                   timeout=60)
    findings = {m.key().decode(): json.loads(m.value()) for m in ocsf}
    assert set(findings) == alert_ids
    assert all(f["finding_info"]["uid"] == k and f["class_uid"] == 2004 for k, f in findings.items())
    assert {f["finding_info"]["analytic"]["uid"] for f in findings.values()} == {"BI-1", "producer-gap"}
    phase("findings read")

    # -- each worker's metrics: events in, dead letters, events out, lag, alerts by worker
    want_in = {(topic, reader): len(valid[topic]) + N_GARBAGE for topic, readers in READERS.items()
               for reader in readers if topic != "containers"}  # containers: the feed, not an agent
    dead_counts = {reader: Counter(src[0] for src in got) for reader, got in by_reader.items()}
    for name, w in workers.items():
        m = scrape(w.port)
        for (topic, reader), n in want_in.items():
            if reader == name:
                got_in = m.get(("eunomia_worker_events_in_total", name, settings.topic(topic)), 0)
                assert got_in >= n, (name, topic, got_in, n)
        for topic, n in dead_counts[name].items():
            assert m[("eunomia_worker_dead_letters_total", name, topic)] == n, (name, topic)
        assert m[("eunomia_worker_events_out_total", name, settings.topic("dlq"))] >= sum(
            dead_counts[name].values())
        assert any(k[0] == "eunomia_worker_consumer_lag" and k[1] == name for k in m), name
    # counters count emissions: a gap both sources report is emitted twice under one id
    assert scrape(workers["rules"].port)[("eunomia_alerts_total", "rules", "BI-1")] >= N_ENRICHED
    assert scrape(workers["health"].port)[("eunomia_alerts_total", "health", "producer-gap")] >= \
        sum(1 for f in findings.values() if f["finding_info"]["analytic"]["uid"] == "producer-gap")

    want_images = {f"bi-direct-{k}" for k in range(N_ENRICHED)} | \
        {f"bi-img-{k}" for k in range(N_CONTAINERS)}
    deadline = time.monotonic() + 90
    profiles: dict[str, Any] = {}
    while time.monotonic() < deadline and set(profiles) != want_images:
        profiles = read_profiles(settings)
        time.sleep(1.0)
    phase("profiles read")
    assert set(profiles) == want_images
    for k in range(N_CONTAINERS):
        prof = profiles[f"bi-img-{k}"]
        assert prof["containers"] == [f"ctr-{k}"] and [s["name"] for s in prof["syscalls"]] == [
            "read", "write"]

    # -- no worker restarted, none printed a traceback
    for name, w in workers.items():
        assert w.proc.poll() is None and w.proc.pid == pids[name], f"{name} is gone"
        text = w.log.read_text(errors="replace")
        assert "Traceback" not in text and "crashed" not in text.lower(), f"{name}:\n{text[-3000:]}"
