"""Records over the size limit (issue 22, item 4): an exec with a 900 KB argv
whose child inherits it makes enriched events over a 50 KB record limit (the
lineage keeps 32 KB of each argv), and a garbage record at the broker's limit
makes dead letters over it. Nothing crashes, nothing is
skipped: the enriched events are written with their argv cut (flagged by the
``eunomia-truncated`` header and a marker), the dead letters without the
original bytes (``eunomia-omitted``), and the events after them are enriched."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import Producer

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from tests.support import kafka_io
from tests.support.raw_records import (
    Host,
    container_record,
    exec_payload,
    fork_payload,
    open_payload,
    podman_path,
)
from tests.support.workers import start_worker, stop

pytestmark = pytest.mark.kafka
BROKER_LIMIT = 1_048_588  # Kafka's default message.max.bytes
LIMIT = 50_000  # kafka.max_message_bytes: under two 32 KB argv (the lineage keeps that much)


def test_oversized_output_is_cut_or_dead_lettered_never_lost(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    h = Host("h-big")
    cid, cg = "4" * 64, 7200
    path = podman_path(cid)
    argv = ["/usr/bin/big", *("a" * 1000 for _ in range(900))]  # ~900 KB
    events = [
        h.event("exec", pid=10, start=5, comm="big", cgroup_id=cg, cgroup_path=path,
                payload=exec_payload("/usr/bin/big", *argv)),
        h.event("fork", pid=10, start=5, comm="big", cgroup_id=cg, cgroup_path=path,
                payload=fork_payload("h-big", 500, 50)),
        h.event("exec", pid=500, start=50, ppid=10, pstart=5, comm="big", cgroup_id=cg, cgroup_path=path,
                payload=exec_payload("/usr/bin/big", *argv)),
        h.event("open", pid=500, start=50, ppid=10, pstart=5, comm="big", cgroup_id=cg, cgroup_path=path,
                payload=open_payload("/etc/hosts")),
    ]
    after = [h.event("open", pid=10, start=5, comm="big", cgroup_id=cg, cgroup_path=path,
                     payload=open_payload("/etc/after"))]
    rec = container_record("h-big", cg, cid)
    kafka_io.publish(settings, "containers", [(f"h-big/{cg}".encode(),
                                               kafka_io.CODEC.encode("container", rec))])
    small = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"max_message_bytes": LIMIT})})
    procs = [start_worker(small, n, workdir=tmp_path / n) for n in ("enrich", "health")]
    try:
        p = Producer({**settings.kafka.librdkafka(), "message.max.bytes": BROKER_LIMIT})
        for key, value in kafka_io.raw_items(events):
            p.produce(settings.topic("raw.events"), value, key)
        garbage = b"\xc3\x01" + b"\xee" * (BROKER_LIMIT - 200)  # at the broker's limit
        p.produce(settings.topic("raw.events"), garbage, b"h-big")
        for key, value in kafka_io.raw_items(after):
            p.produce(settings.topic("raw.events"), value, key)
        assert p.flush(60) == 0

        seqs = {e["seq"] for e in events + after}
        got = kafka_io.consume(settings, "enriched.events", timeout=120,
                               until=lambda out: seqs <= {v["event"]["seq"] for _, v, _, _ in out})
        by_seq = {v["event"]["seq"]: (v, dict(hd)) for _, v, hd, _ in got}
        assert seqs <= set(by_seq), "an event was skipped"
        child = by_seq[events[3]["seq"]]
        assert child[0]["process"]["pid"] == 500
        assert b"bytes cut" in child[1]["eunomia-truncated"]
        cut = [a for a in (child[0]["process"]["args"], child[0]["process"]["parent"]["args"])
               if a and a[-1].startswith("...[eunomia:")]
        assert cut, "no argv carries the cut marker"
        assert len(kafka_io.CODEC.encode("enriched_event", child[0])) <= LIMIT
        assert by_seq[after[0]["seq"]][1].get("eunomia-truncated") is None

        dead = kafka_io.consume(settings, "dlq", timeout=120, decode="dead_letter",
                                until=lambda out: len(out) >= 2)
        assert sorted(v["processor"] for _, v, _, _ in dead) == ["enrich", "health"]
        for _, v, hd, _ in dead:
            assert v["value"] is None and "omitted: over the" in v["error"]
            assert int(dict(hd)["eunomia-omitted"]) >= BROKER_LIMIT - 200
            assert f"over the {LIMIT}-byte dead-letter limit" in v["error"]
        for proc in procs:
            assert proc.poll() is None, "a worker exited"
        for n in ("enrich", "health"):
            logs = "".join(f.read_text(errors="replace") for f in (tmp_path / n).glob("*.log"))
            assert "Traceback" not in logs, logs[-3000:]
    finally:
        for proc in procs:
            stop(proc)
