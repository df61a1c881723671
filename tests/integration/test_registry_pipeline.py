"""Schema-registry mode end to end (issue 22, item 3): with
``kafka.schema_registry_url`` set, the four workers read what a registry-mode
producer writes and every record they write (enriched events, alerts, seccomp
profiles, dead letters) carries Confluent framing, so the tools a SIEM already
has read ``alerts`` (confluent-kafka's AvroDeserializer) and ``alerts.ocsf`` (kcat)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.schemas import codec_for
from tests.requirements import require
from tests.support import kafka_io
from tests.support.raw_records import Host, container_record, exec_payload, podman_path
from tests.support.workers import start_worker, stop

pytestmark = pytest.mark.kafka
CONFLUENT = 0
RULE_FILE = """\
- rule: Registry test marker
  id: REG-1
  desc: One alert per exec of the marker program.
  condition: event.kind = exec and process.name = regmark
  output: "regmark ran %event.id"
  level: warning
  tags: [test, mitre_execution, T1059]
"""


def values(settings: Settings, topic: str, until: Any, timeout: float = 120) -> list[tuple[bytes, bytes]]:
    got = kafka_io.consume(settings, topic, until=until, timeout=timeout, decode=None)
    return [(k, v) for k, v, _, _ in got if v is not None]


def test_registry_mode_end_to_end(settings: Settings, schema_registry_url: str, tmp_path: Path) -> None:
    reg = settings.model_copy(update={"kafka": settings.kafka.model_copy(
        update={"schema_registry_url": schema_registry_url})})
    codec = codec_for(reg)
    create_topics(reg)
    rules = tmp_path / "reg.yaml"
    rules.write_text(RULE_FILE)
    procs = [start_worker(reg, "enrich", workdir=tmp_path / "enrich"),
             start_worker(reg, "rules", "--no-pack", "--rules", str(rules), workdir=tmp_path / "rules"),
             start_worker(reg, "seccomp", "--debounce", "1", "--max-wait", "3",
                          workdir=tmp_path / "seccomp"),
             start_worker(reg, "health", workdir=tmp_path / "health")]
    try:
        cid = "3" * 64
        h = Host("h-reg")
        rec = container_record("h-reg", 7100, cid, name="reg-web")
        kafka_io.publish(reg, "containers", [(f"h-reg/{rec['cgroup_id']}".encode(),
                                              codec.encode("container", rec))])
        events = [h.event("exec", pid=10 + i, comm="regmark", cgroup_id=7100,
                          cgroup_path=podman_path(cid), payload=exec_payload("/usr/bin/regmark"))
                  for i in range(4)]
        del events[1]  # a seq hole: the health worker's producer-gap alert
        kafka_io.publish(reg, "raw.events", [(e["host_id"].encode(), codec.encode("raw_event", e))
                                             for e in events])
        calls = h.syscalls(pid=10, comm="regmark", cgroup_id=7100, cgroup_path=podman_path(cid),
                           counts={0: 3, 1: 2})
        kafka_io.publish(reg, "raw.syscalls", [(b"h-reg", codec.encode("syscall_counts", calls))])
        # Confluent framing with an id the registry never gave: a dead letter, not a crash
        kafka_io.publish(reg, "raw.events", [(b"h-reg", b"\x00\x00\x0f\x42\x40garbage")])

        def alert_rules(got: list[Any]) -> list[str]:
            return [codec.decode(v, expect="alert")["rule_id"] for _, v, _, _ in got if v]

        alerts = values(reg, "alerts", lambda got: sorted(set(alert_rules(got))) == ["REG-1", "producer-gap"]
                        and alert_rules(got).count("REG-1") >= 3)
        enriched = values(reg, "enriched.events", lambda got: len(got) >= 4)
        dead = values(reg, "dlq", lambda got: len(got) >= 2)  # enrich's and health's
        profiles = values(reg, "seccomp.profiles", lambda got: len(got) >= 1)
        for topic, got in (("alerts", alerts), ("enriched.events", enriched), ("dlq", dead),
                           ("seccomp.profiles", profiles)):
            assert got, topic
            assert {v[0] for _, v in got} == {CONFLUENT}, f"{topic} not all Confluent-framed"
        decoded = [codec.decode(v, expect="alert") for _, v in alerts]
        assert sum(a["rule_id"] == "REG-1" for a in decoded) == 3
        assert {codec.decode(v, expect="dead_letter")["processor"] for _, v in dead} == {"enrich", "health"}

        # a Confluent deserializer reads alerts from the registry alone
        deserialize = AvroDeserializer(SchemaRegistryClient({"url": schema_registry_url}))
        ctx = SerializationContext(reg.topic("alerts"), MessageField.VALUE)
        assert sorted(deserialize(v, ctx)["alert_id"] for _, v in alerts) == sorted(
            a["alert_id"] for a in decoded)

        # every alert, the health worker's too, is a finding on alerts.ocsf
        ids = {k.decode() for k, _ in alerts}
        ocsf = values(reg, "alerts.ocsf", lambda got: {k.decode() for k, _, _, _ in got} >= ids)
        assert {k.decode() for k, _ in ocsf} == ids
        assert {json.loads(v)["finding_info"]["analytic"]["uid"] for _, v in ocsf} == {
            "REG-1", "producer-gap"}

        # kcat, as a SIEM team would run it, on the OCSF topic (Debian's kcat is built
        # without Avro, so ``-s value=avro`` cannot run here; the deserializer above
        # reads the same framing and registry ids that kcat's Avro mode does)
        kcat = shutil.which("kcat") or shutil.which("kafkacat")
        require(kcat is not None, "needs kcat (deploy/host/setup.sh installs it)")
        assert kcat is not None
        out = subprocess.run([kcat, "-C", "-b", reg.kafka.bootstrap_servers, "-t",
                              reg.topic("alerts.ocsf"), "-e", "-q", "-f", "%k %s\n"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        read = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
                for line in out.stdout.splitlines() if line.strip()}
        assert set(read) == ids and all(f["finding_info"]["uid"] == k for k, f in read.items())
    finally:
        for p in procs:
            stop(p)
