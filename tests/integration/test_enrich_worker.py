"""The enrich worker as a real faust process on a real broker: events that
arrive before their container's record, pid reuse, and a SIGKILLed worker whose
successor rebuilds lineage from the changelog, and garbage between valid raw
events. (Garbage of eleven kinds on every input topic and every worker:
tests/integration/test_bad_input.py.)"""

from __future__ import annotations

import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from eunomia.config import Settings, TopicSettings
from eunomia.kafka.topics import create_topics
from tests.support import kafka_io, raw_records
from tests.support.raw_records import Host, container_record, exec_payload, fork_payload, podman_path
from tests.support.workers import start_worker, stop, workers

S = 10**9


def _publish_events(settings: Settings, events: list[dict[str, Any]]) -> None:
    kafka_io.publish(settings, "raw.events", kafka_io.raw_items(events))


def _publish_record(settings: Settings, rec: dict[str, Any]) -> None:
    kafka_io.publish(settings, "containers", [(f"{rec['host_id']}/{rec['cgroup_id']}".encode(),
                                               kafka_io.CODEC.encode("container", rec))])


def _enriched(settings: Settings, seqs: set[int], timeout: float = 120) -> dict[int, dict[str, Any]]:
    """The enriched event of each raw seq (the last copy if one came twice)."""
    got = kafka_io.consume(settings, "enriched.events", timeout=timeout, until=lambda out: seqs <= {
        v["event"]["seq"] for _, v, _, _ in out})
    return {v["event"]["seq"]: v for _, v, _, _ in got if v["event"]["seq"] in seqs}


def test_events_before_their_container_record_are_enriched_or_flagged(settings: Settings,
                                                                     tmp_path: Path) -> None:
    create_topics(settings)
    h = Host("h-late")
    late_cid, never_cid = "1" * 64, "2" * 64
    late = [h.event("open", pid=300 + i, comm="app", cgroup_id=7001, cgroup_path=podman_path(late_cid),
                    payload=raw_records.open_payload(f"/data/{i}")) for i in range(5)]
    never = [h.event("open", pid=400 + i, comm="app", cgroup_id=7002, cgroup_path=podman_path(never_cid),
                     payload=raw_records.open_payload(f"/data/{i}")) for i in range(5)]
    with workers(settings, "enrich", tmp_path):
        _publish_events(settings, late + never)
        time.sleep(1.0)  # the record comes a second later, within the grace period
        _publish_record(settings, container_record("h-late", 7001, late_cid, name="late-web",
                                                   labels={"team": "blue"}))
        # later events move event time past the grace for the container that never gets a record
        tail = [h.event("open", pid=1, comm="init", cgroup_id=1, payload=raw_records.open_payload("/x"),
                        dt=10 * S)]
        _publish_events(settings, tail)
        out = _enriched(settings, {e["seq"] for e in late + never + tail})
    assert set(out) == {e["seq"] for e in late + never + tail}, "an event was dropped"
    for e in late:
        c = out[e["seq"]]["container"]
        assert (c["id"], c["name"], c["labels"], c["metadata_complete"]) == (
            late_cid, "late-web", {"team": "blue"}, True)
    for e in never:
        c = out[e["seq"]]["container"]
        assert c["id"] == never_cid and c["name"] is None and c["metadata_complete"] is False


def test_pid_reuse_never_shares_lineage(settings: Settings, tmp_path: Path) -> None:
    create_topics(settings)
    h = Host("h-reuse")
    cg, path = 7100, podman_path("3" * 64)
    first = [
        h.event("exec", pid=10, start=5, comm="nginx", cgroup_id=cg, cgroup_path=path,
                payload=exec_payload("/usr/sbin/nginx", "nginx")),
        h.event("fork", pid=10, start=5, comm="nginx", cgroup_id=cg, cgroup_path=path,
                payload=fork_payload("h-reuse", 500, 50)),
        h.event("exec", pid=500, start=50, ppid=10, pstart=5, comm="sh", cgroup_id=cg, cgroup_path=path,
                payload=exec_payload("/bin/sh", "sh")),
        h.event("exit", pid=500, start=50, ppid=10, pstart=5, comm="sh", cgroup_id=cg, cgroup_path=path,
                payload={"exit_code": 0, "signal": 0}),
    ]
    second = [  # the same pid 500 again, later, under another parent
        h.event("exec", pid=20, start=7, comm="cron", cgroup_id=cg, cgroup_path=path,
                payload=exec_payload("/usr/sbin/cron", "cron")),
        h.event("fork", pid=20, start=7, comm="cron", cgroup_id=cg, cgroup_path=path,
                payload=fork_payload("h-reuse", 500, 900)),
        h.event("exec", pid=500, start=900, ppid=20, pstart=7, comm="backup", cgroup_id=cg,
                cgroup_path=path, payload=exec_payload("/usr/bin/backup", "backup")),
        h.event("open", pid=500, start=900, ppid=20, pstart=7, comm="backup", cgroup_id=cg,
                cgroup_path=path, payload=raw_records.open_payload("/etc/passwd")),
    ]
    _publish_record(settings, container_record("h-reuse", cg, "3" * 64))
    with workers(settings, "enrich", tmp_path):
        _publish_events(settings, first + second)
        out = _enriched(settings, {e["seq"] for e in first + second})
    old, new = out[first[2]["seq"]]["process"], out[second[3]["seq"]]["process"]
    assert old["pid"] == new["pid"] == 500 and old["exec_id"] != new["exec_id"]
    assert old["parent"]["name"] == "nginx" and new["parent"]["name"] == "cron"
    assert new["name"] == "backup"
    old_ids = {a["exec_id"] for a in old["ancestors"]} | {old["exec_id"]}
    assert not old_ids & ({a["exec_id"] for a in new["ancestors"]} | {new["exec_id"]})


def _tree(h: Host, cg: int, path: str, n_children: int) -> tuple[list[dict], list[dict]]:
    """A process tree (before) and activity of its deepest processes (after)."""
    before = [h.event("exec", pid=10, start=5, comm="supervisor", cgroup_id=cg, cgroup_path=path,
                      payload=exec_payload("/usr/bin/supervisor", "supervisor"))]
    after = []
    for i in range(n_children):
        pid, start = 1000 + i, 100 + i
        before.append(h.event("fork", pid=10, start=5, comm="supervisor", cgroup_id=cg, cgroup_path=path,
                              payload=fork_payload(h.host_id, pid, start)))
        before.append(h.event("exec", pid=pid, start=start, ppid=10, pstart=5, comm="worker",
                              cgroup_id=cg, cgroup_path=path,
                              payload=exec_payload("/usr/bin/worker", "worker", str(i))))
        after.append(h.event("connect", pid=pid, start=start, ppid=10, pstart=5, comm="worker",
                             cgroup_id=cg, cgroup_path=path,
                             payload=raw_records.connect_payload("10.9.9.9", 443)))
    return before, after


def _lineage(e: dict[str, Any]) -> tuple:
    p = e["process"]
    return (p["exec_id"], p["name"], p["parent"]["exec_id"] if p["parent"] else None,
            tuple(a["exec_id"] for a in p["ancestors"]), p["lineage_complete"], e["container"]["name"])


def test_sigkilled_worker_successor_rebuilds_lineage_from_the_changelog(settings: Settings,
                                                                       tmp_path: Path) -> None:
    """The same stream through an uninterrupted worker (reference prefix) and
    through one SIGKILLed between the tree and the activity: the activity's
    enrichment (lineage and container) is identical."""
    reference = settings.model_copy(update={"topics": TopicSettings(
        prefix=f"r{uuid.uuid4().hex[:8]}.", partitions=settings.topics.partitions)})
    outs = []
    for run_settings, kill in ((reference, False), (settings, True)):
        create_topics(run_settings)
        h = Host("h-kill")
        cg, path = 7200, podman_path("4" * 64)
        before, after = _tree(h, cg, path, 20)
        _publish_record(run_settings, container_record("h-kill", cg, "4" * 64, name="svc"))
        first = start_worker(run_settings, "enrich", workdir=tmp_path / "w1")
        try:
            _publish_events(run_settings, before)
            _enriched(run_settings, {e["seq"] for e in before})
            if kill:
                time.sleep(5)  # past faust's commit interval: offsets and changelog written
                stop(first, signal.SIGKILL)
                second = start_worker(run_settings, "enrich", workdir=tmp_path / "w2")
            _publish_events(run_settings, after)
            got = _enriched(run_settings, {e["seq"] for e in after}, timeout=180)
        finally:
            stop(first)
            if kill:
                stop(second)
        missing = sorted({e["seq"] for e in after} - set(got))
        assert not missing, f"{'killed' if kill else 'reference'} run: seqs {missing} never enriched"
        outs.append({seq: _lineage(e) for seq, e in got.items()})
    reference_out, killed_out = outs
    assert killed_out == reference_out
    sample = next(iter(killed_out.values()))
    # the parent is known from before the kill (the supervisor's own parent never is)
    assert sample[1] == "worker" and sample[5] == "svc"
    assert sample[2] == raw_records.exec_id("h-kill", 10, 5) and sample[2] in sample[3]


def test_garbage_interleaved_on_raw_events_goes_to_the_dlq_and_every_valid_event_is_enriched(
        settings: Settings, tmp_path: Path) -> None:
    """One host key for all, so garbage sits between valid events on the same
    partition: a worker that stopped, skipped ahead or retried there would lose
    or repeat valid events, which the exact counts below catch."""
    create_topics(settings)
    h = Host("h-garbage")
    cg, cid = 7300, "5" * 64
    valid = [h.event("open", pid=600 + i, comm="app", cgroup_id=cg, cgroup_path=podman_path(cid),
                     payload=raw_records.open_payload(f"/srv/{i}")) for i in range(300)]
    good_bytes = kafka_io.CODEC.encode("raw_event", valid[0])
    rng = random.Random(4)
    garbage = [rng.randbytes(rng.randint(1, 300)) for _ in range(20)]
    garbage += [b"", b'{"kind": "open"}', good_bytes[: len(good_bytes) // 2], b"\x00" * 40,
                good_bytes[:5] + b"\xff" * 50]
    items: list[tuple[bytes, bytes]] = []
    g = iter(garbage)
    for i, (key, value) in enumerate(kafka_io.raw_items(valid)):
        items.append((key, value))
        if i % 12 == 5:
            bad = next(g, None)
            if bad is not None:
                items.append((b"h-garbage", bad))
    assert sum(1 for _, v in items if v in garbage) == len(garbage), "every kind of garbage sent"
    _publish_record(settings, container_record("h-garbage", cg, cid, name="g-app"))
    with workers(settings, "enrich", tmp_path):
        kafka_io.publish(settings, "raw.events", items)
        out = kafka_io.consume(settings, "enriched.events", timeout=120,
                               until=lambda got: len(got) >= len(valid))
        dead = kafka_io.consume(settings, "dlq", decode="dead_letter", timeout=60,
                                until=lambda got: len(got) >= len(garbage))
        # read again, waiting for one more: a duplicate or an extra dead letter still
        # in flight would be counted below
        n_out, n_dead = len(out), len(dead)
        out = kafka_io.consume(settings, "enriched.events", timeout=15,
                               until=lambda got: len(got) > n_out)
        dead = kafka_io.consume(settings, "dlq", decode="dead_letter", timeout=10,
                                until=lambda got: len(got) > n_dead)
    seqs = sorted(v["event"]["seq"] for _, v, _, _ in out)
    assert seqs == sorted(e["seq"] for e in valid), "a valid event lost or enriched twice"
    assert all(v["container"]["name"] == "g-app" for _, v, _, _ in out)
    assert sorted(d["value"] or b"" for _, d, _, _ in dead) == sorted(garbage), \
        "one dead letter per garbage message, with its bytes"
    for _, d, _, _ in dead:
        assert d["processor"] == "enrich" and d["topic"] == settings.topic("raw.events")
        assert d["error_type"] and d["error"], d
