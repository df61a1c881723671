"""Live equals offline: the alerts the live pipeline (real producer -> enrich
worker -> rules worker, real podman containers, real Kafka) raised for a
scripted attack have the same ids as ``replay --rules`` over a recording of
the raw topics of that run; and the benign run of the same image raises
nothing in either.

The producer sees the whole host, so both sides are compared on this test's
two containers only (by name; other tests may run containers meanwhile).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eunomia.commands.demo import ATTACK_SCRIPT, BENIGN_ARGV
from eunomia.config import Settings
from eunomia.endpoints import wait_ready
from eunomia.kafka.topics import create_topics
from eunomia.processors.replay.offline import replay_offline
from eunomia.processors.replay.record import record
from eunomia.processors.replay.recording import RecordedMessage, RecordingReader, RecordingWriter
from eunomia.processors.rules import pack_files
from eunomia.schemas import AvroCodec
from tests.requirements import require_bpf, require_podman
from tests.support.kafka_io import read_topic
from tests.support.podman import BUSYBOX_IMAGE, podman
from tests.support.ports import free_port_block
from tests.support.workers import eunomia_env, start_worker, stop


def save_container(rec: Path, name: str, out: Path) -> None:
    """The messages of one container (its record, its raw events and syscall
    counts) from a recording of the whole host, under the default topic names."""
    codec = AvroCodec()
    msgs = list(RecordingReader(rec))
    logical = RecordingReader(rec).logical_topics
    keys = {m.key for m in msgs if m.value is not None and logical.get(m.topic) == "containers"
            and codec.decode(m.value, "container")["name"] == name}
    cgroups = {int(k.decode().rsplit("/", 1)[1]) for k in keys if k}
    kept = []
    for m in msgs:
        topic = logical.get(m.topic, "")
        if topic == "containers":
            keep = m.key in keys
        else:
            keep = m.value is not None and codec.decode(m.value)["cgroup_id"] in cgroups
        if keep:
            kept.append(RecordedMessage(f"eunomia.{topic}", m.partition, m.offset, m.timestamp_ms,
                                        m.value, m.key, m.headers))
    topics = sorted({m.topic for m in kept})
    with RecordingWriter(out, topics, logical={t: t.removeprefix("eunomia.") for t in topics}) as w:
        for m in kept:
            w.write(m)


pytestmark = [pytest.mark.kafka, pytest.mark.bpf, pytest.mark.podman, pytest.mark.root]


@pytest.fixture
def pipeline(settings: Settings, podman_socket: str, tmp_path: Path) -> Iterator[None]:
    require_bpf()
    require_podman()
    create_topics(settings)
    port = free_port_block()
    env = {**eunomia_env(settings), "EUNOMIA_METRICS_PORT": str(port),
           "EUNOMIA_PRODUCER__SPOOL_DIR": str(tmp_path / "spool"), "DOCKER_HOST": podman_socket}
    log = open(tmp_path / "producer.log", "wb")  # noqa: SIM115 - closed below
    producer = subprocess.Popen([sys.executable, "-m", "eunomia", "producer"], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    workers = [start_worker(settings, "enrich", "--grace", "2"), start_worker(settings, "rules")]
    try:
        assert wait_ready(port, timeout=120, alive=lambda: producer.poll() is None), \
            "producer died or not ready in 120 s: " + (tmp_path / "producer.log").read_text()[-3000:]
        yield
    finally:
        for w in workers:
            stop(w)
        stop(producer)
        log.close()


def test_live_alerts_equal_offline_replay_of_the_recording(pipeline: None, settings: Settings,
                                                          tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    attack, benign = f"lo-attack-{tag}", f"lo-benign-{tag}"
    ours = {attack, benign}
    try:
        assert podman("run", "--name", benign, BUSYBOX_IMAGE, *BENIGN_ARGV).returncode == 0
        podman("run", "--name", attack, BUSYBOX_IMAGE, "sh", "-c", ATTACK_SCRIPT)
        # the container records reach the topic through the runtime API's
        # event stream; record once both are there
        read_topic(settings, "containers", "container", timeout=120, until=lambda got: ours <= {
            r.get("name") for r in got})
        time.sleep(2)

        rec = tmp_path / "scenario.avro"
        stats = record(settings, ["raw.events", "raw.syscalls", "containers"], rec,
                       from_beginning=True, to_end=True)
        assert stats.messages > 0
        offline = replay_offline(rec, list(pack_files())).alerts
        want = {a["alert_id"]: a["rule_id"] for a in offline if a["container_name"] in ours}
        assert want, "the offline replay of the attack raised nothing"
        assert {a["container_name"] for a in offline if a["alert_id"] in want} == {attack}

        # live: the rules worker judges a quiet partition a few seconds after
        # its last event (idle watermark), so wait until every offline id is in
        def complete(got: list) -> bool:
            return set(want) <= {a["alert_id"] for a in got}

        live_msgs = read_topic(settings, "alerts", "alert", until=complete, timeout=180)
        time.sleep(5)  # and then for anything extra the live side might add
        live_msgs += read_topic(settings, "alerts", "alert", until=lambda got: False, timeout=5)
        live = {a["alert_id"]: a["rule_id"] for a in live_msgs if a["container_name"] in ours}
        print(f"\nlive {sorted(set(live.values()))} / offline {sorted(set(want.values()))}")
        assert live == want
        out = os.environ.get("EUNOMIA_SCENARIO_OUT")
        if out:  # refresh the captured part of tests/data/scenarios
            for name, label in ((attack, "attack"), (benign, "benign")):
                save_container(rec, name, Path(out) / f"captured-demo-{label}.avro")
    finally:
        podman("rm", "-f", attack, benign)
