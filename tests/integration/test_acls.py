"""Authorization on a real SASL_SSL broker with the KRaft authorizer, ACLs and
quotas applied by the project's own commands: each role does its job with its
own credentials, every forbidden action is refused and lands nothing, ``acls
check``/``apply`` name and remove what they should, and a host over its quota is
throttled without losing events.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from eunomia.config import AclSettings, KafkaSettings, LocalKafkaSettings, Settings, TopicSettings
from eunomia.kafka.acl_admin import AclAdmin
from eunomia.kafka.acls import Acl
from eunomia.kafka.local_broker import LocalKafka
from eunomia.kafka.local_secure import role_user
from eunomia.producer.publisher import Publisher
from eunomia.schemas import AvroCodec
from tests.conftest import free_port_block
from tests.requirements import require

pytestmark = pytest.mark.kafka

CODEC = AvroCodec()
LIBRDKAFKA_LOG = logging.getLogger("tests.acls.librdkafka")
HOSTS = ("host-a", "host-b")  # two more producer principals, for the quota test
STRANGER = "eunomia-stranger"  # authenticates, holds no role
LATE = "host-late"  # a producer host whose ACLs are granted only after it started
QUOTA = 64 * 1024  # producer_byte_rate of every producer principal here (bytes/s)
# request share: 4 request threads' worth, so only bytes limit here. With the default
# (25 % of one thread) a host sending 10 small requests/s was throttled too on this
# 2-core host at load 20, where TLS and request handling were slow
REQUEST_PCT = 400
MARKER = "aclmark"
RULE_FILE = f"""\
- rule: ACL test marker
  id: ACL-1
  desc: One alert per enriched event of the marker process.
  condition: process.name = {MARKER}
  output: "marker %event.id"
  level: warning
  tags: [test]
"""
WORKERS = {
    "enrich": ["enrich"],
    "rules": ["rules", "--no-pack", "--rules", "{rules}"],
    "seccomp": ["seccomp", "--debounce", "1", "--max-wait", "3"],
    "health": ["health"],
}


@dataclass
class Cluster:
    kafka: LocalKafka
    passwords: dict[str, str]
    prefix: str
    tmp: Path

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def conf(self, user: str) -> dict[str, Any]:
        """confluent-kafka settings for ``user``; librdkafka's lines go to logging (pytest
        shows them with a failure), not to stderr."""
        return {**self.kafka.client_config(), "sasl.username": user,
                "sasl.password": self.passwords[user], "logger": LIBRDKAFKA_LOG}

    def kafka_settings(self, user: str) -> KafkaSettings:
        m = self.kafka.material
        return KafkaSettings(bootstrap_servers=self.kafka.bootstrap, security_protocol="SASL_SSL",
                             sasl_mechanism="SCRAM-SHA-512", sasl_username=user,
                             sasl_password=self.passwords.get(user, "no-such-user"), ssl_cafile=m.ca,
                             group_session_timeout_s=10)

    def settings(self, user: str, prefix: str | None = None) -> Settings:
        return Settings(kafka=self.kafka_settings(user),
                        topics=TopicSettings(prefix=prefix or self.prefix, partitions=3),
                        acls=AclSettings(principals=self.principals(), producer_byte_rate=QUOTA,
                                         producer_request_percentage=REQUEST_PCT))

    def principals(self) -> dict[str, list[str]]:
        return {"producer": [f"User:{role_user('producer')}", *(f"User:{h}" for h in HOSTS)]}

    def env(self, user: str, prefix: str | None = None, **extra: str) -> dict[str, str]:
        """The environment of an ``eunomia`` process running as ``user``."""
        k = self.kafka_settings(user)
        return {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
                "EUNOMIA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "EUNOMIA_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
                "EUNOMIA_KAFKA__SASL_USERNAME": user,
                "EUNOMIA_KAFKA__SASL_PASSWORD": k.sasl_password.get_secret_value(),
                "EUNOMIA_KAFKA__SSL_CAFILE": str(k.ssl_cafile),
                "EUNOMIA_KAFKA__GROUP_SESSION_TIMEOUT_S": "10",
                "EUNOMIA_TOPICS__PREFIX": prefix or self.prefix, "EUNOMIA_TOPICS__PARTITIONS": "3",
                "EUNOMIA_ACLS__PRINCIPALS": json.dumps(self.principals()),
                "EUNOMIA_ACLS__PRODUCER_BYTE_RATE": str(QUOTA),
                "EUNOMIA_ACLS__PRODUCER_REQUEST_PERCENTAGE": str(REQUEST_PCT),
                "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **extra}

    def cli(self, user: str, *args: str, prefix: str | None = None, timeout: float = 180
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "eunomia", *args], env=self.env(user, prefix),
                              capture_output=True, text=True, timeout=timeout)

    def ends(self, topic: str) -> dict[int, int]:
        """High watermark per partition of ``topic`` (read as the admin); {} if it does not exist."""
        c = Consumer({**self.conf(role_user("admin")), "group.id": "ends"})
        deadline = time.monotonic() + 30
        try:
            while True:  # a topic created a moment ago may have no leader yet
                md = c.list_topics(topic, timeout=30).topics.get(topic)
                if md is None or md.error is not None:
                    return {}
                try:
                    return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                            for p in md.partitions}
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            c.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require(os.system("command -v java >/dev/null") == 0, "needs Java 17 for the local Kafka broker")
    tmp = tmp_path_factory.mktemp("acls")
    s = LocalKafkaSettings()
    kafka = LocalKafka(tmp / "kafka", s.cache_dir, port=free_port_block(), heap="384m", secure=True)
    kafka.start(timeout=240)  # a loaded CI host was seen to need more than 90 s
    try:
        passwords = dict(kafka.material.passwords)
        admin = AdminClient(kafka.client_config())
        ups = []
        for user in (*HOSTS, STRANGER, LATE):
            passwords[user] = f"pw-{uuid.uuid4().hex}"
            ups.append(UserScramCredentialUpsertion(
                user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), passwords[user].encode()))
        for fut in admin.alter_user_scram_credentials(ups).values():
            fut.result(30)
        c = Cluster(kafka, passwords, f"a{uuid.uuid4().hex[:6]}.", tmp)
        admin_user = role_user("admin")
        res = c.cli(admin_user, "topics", "create")
        assert res.returncode == 0, res.stderr
        res = c.cli(admin_user, "acls", "apply")
        print(res.stdout)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "3 set" in res.stdout  # a quota per producer principal
        _warm_up_coordinators(c)
        yield c
    finally:
        kafka.stop()


def _warm_up_coordinators(c: Cluster) -> None:
    """The consumer-offsets topic exists before four workers look for their coordinator
    at once (a brand-new broker was seen to stall them): one commit as the admin."""
    name = c.topic("producer.health")
    cons = Consumer({**c.conf(role_user("admin")), "group.id": f"{c.prefix}warmup",
                     "enable.auto.commit": False})
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                cons.commit(offsets=[TopicPartition(name, 0, 0)], asynchronous=False)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        cons.close()


# -- helpers: a refused write, a refused read ------------------------------------------------
def produce_as(c: Cluster, user: str, topic: str) -> KafkaError | None:
    """Produce one message as ``user``; returns its delivery error (None: accepted). A
    refused message must leave the topic as it was. Not idempotent: a principal that
    may write no topic at all is refused its producer id already (CLUSTER_AUTHORIZATION_FAILED),
    before any topic is asked for."""
    before = c.ends(topic)
    reports: list[KafkaError | None] = []
    p = Producer({**c.conf(user), "enable.idempotence": False, "acks": "all",
                  "message.timeout.ms": 30000})
    p.produce(topic, b"forbidden", b"forbidden", on_delivery=lambda err, msg: reports.append(err))
    assert p.flush(40) == 0
    (err,) = reports
    if err is not None:
        assert c.ends(topic) == before, f"a refused write to {topic} landed"
    return err


def read_refused(c: Cluster, user: str, topic: str, expect: int, group: str | None = None
                 ) -> list[KafkaError]:
    """Read ``topic`` as ``user`` (subscribed in ``group``, else assigned) until the error
    ``expect`` comes; fails if any message arrives. Returns the errors seen."""
    cons = Consumer({**c.conf(user), "group.id": group or f"{c.prefix}stray-{uuid.uuid4().hex[:6]}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    errors: list[KafkaError] = []
    if group:
        cons.subscribe([topic])
    else:
        cons.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not any(e.code() == expect for e in errors):
            msg = cons.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is not None, f"{user} read a message of {topic}"
            errors.append(msg.error())
    finally:
        cons.close()
    assert any(e.code() == expect for e in errors), errors
    assert all("authorization failed" in e.str().lower() for e in errors), errors
    return errors


def assert_topic_refused(err: KafkaError | None, what: str) -> None:
    assert err is not None, f"{what} was accepted"
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, f"{what}: {err}"
    assert "authorization failed" in err.str().lower(), err.str()


# -- the roles at work --------------------------------------------------------------------------
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

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _ns() -> dict[str, int]:
    return {"pid": 1, "mnt": 2, "net": 3, "user": 4, "uts": 5, "ipc": 6, "cgroup": 7}


def workload(host: str, n_events: int, n_syscalls: int, hole: int) -> dict[str, list[tuple[bytes, bytes]]]:
    """Container records, raw events of the marker process (seq ``hole`` missing),
    syscall counts and one heartbeat of ``host``."""
    boot, ts0 = "b1", time.time_ns()
    conts = []
    for k in range(3):
        rec = {"host_id": host, "ts_ns": ts0, "container_id": f"ctr-{k}", "name": f"c{k}",
               "image": f"acl-img-{k}", "image_id": f"sha256:{k:064x}", "labels": {},
               "runtime": "podman", "cgroup_path": None, "cgroup_id": 2001 + k}
        conts.append((f"{host}/{2001 + k}".encode(), CODEC.encode("container", rec)))
    events = []
    for seq in range(1, n_events + 2):
        if seq == hole:
            continue
        rec = {"host_id": host, "boot_id": boot, "seq": seq, "ts_ns": ts0 + seq, "kind": "open",
               "pid": 500 + seq, "tid": 500 + seq, "ppid": 1, "uid": 0, "gid": 0, "comm": MARKER,
               "cgroup_id": 2001 + seq % 3, "cgroup_path": None, "ns": _ns(),
               "exec_id": f"{host}:{boot}:{500 + seq}:1", "parent_exec_id": f"{host}:{boot}:1:1",
               "payload": {"path": f"/tmp/f{seq}", "target_path": None, "flags": 0, "mode": 0, "retval": 3}}
        events.append((host.encode(), CODEC.encode("raw_event", rec)))
    syscalls = []
    for k in range(n_syscalls):
        rec = {"host_id": host, "boot_id": boot, "seq": k + 1, "ts_ns": ts0 + k, "interval_ns": 10**9,
               "pid": 700 + k, "comm": "worker", "cgroup_id": 2001 + k % 3, "cgroup_path": None,
               "exec_id": f"{host}:{boot}:{700 + k}:1", "arch": "x86_64",
               "counts": [{"nr": 0, "count": 3}, {"nr": 1, "count": 2}], "fileio": []}
        syscalls.append((host.encode(), CODEC.encode("syscall_counts", rec)))
    beat = {"host_id": host, "boot_id": boot, "ts_ns": time.time_ns(), "started_ns": 1,
            "last_seq": n_events + 1, "events_by_kind": {"open": n_events}, "drops_by_cause": {},
            "spool_bytes": 0, "spool_messages": 0, "lost_ranges": [], "probes": []}
    return {"containers": conts, "raw.events": events, "raw.syscalls": syscalls,
            "producer.health": [(host.encode(), CODEC.encode("producer_health", beat))]}


def read_all(c: Cluster, user: str, topics: list[str], want: int, group: str | None = None,
             timeout: float = 240, key: bytes | None = None) -> list[Any]:
    """Messages of ``topics`` (only those of ``key`` if given) read as ``user`` until ``want``
    arrived or ``timeout``; with ``group`` the consumer subscribes in that group and commits
    what it read."""
    cons = Consumer({**c.conf(user), "group.id": group or f"verify-{uuid.uuid4().hex[:6]}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False})
    cons.subscribe(topics)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            for m in cons.consume(1000, 0.5):
                assert m.error() is None or m.error().code() == KafkaError._PARTITION_EOF, m.error()
                if m.error() is None and (key is None or m.key() == key):
                    out.append(m)
        if group and out:
            cons.commit(asynchronous=False)
            committed = cons.committed([TopicPartition(m.topic(), m.partition()) for m in out], timeout=30)
            assert all(tp.offset > 0 for tp in committed), committed
    finally:
        cons.close()
    return out


def test_each_role_does_its_job(cluster: Cluster, tmp_path: Path) -> None:
    c = cluster
    rules = tmp_path / "acl-rules.yaml"
    rules.write_text(RULE_FILE)
    workers: dict[str, Worker] = {}

    def spawn(name: str) -> Worker:
        port = free_port_block()
        log = tmp_path / f"{name}.log"
        args = [a.replace("{rules}", str(rules)) for a in WORKERS[name]]
        with open(log, "ab") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "eunomia", "worker", *args],
                                    env=c.env(role_user(name), EUNOMIA_METRICS_PORT=str(port)),
                                    stdout=fh, stderr=subprocess.STDOUT, cwd=tmp_path)
        return Worker(name, proc, port, log)

    try:
        for name in WORKERS:
            workers[name] = spawn(name)
        deadline = time.monotonic() + 180
        waiting = set(WORKERS)
        while waiting:
            for name in sorted(waiting):
                w = workers[name]
                assert w.proc.poll() is None, f"{name} exited: {w.log.read_text()[-3000:]}"
                if w.ready():
                    waiting.discard(name)
            assert time.monotonic() < deadline, f"not ready: {waiting}"
            time.sleep(0.5)

        # the producer role publishes, through the producer's own Publisher
        n_events, n_syscalls, hole = 60, 12, 31
        data = workload("acl-host", n_events, n_syscalls, hole)
        pub = Publisher(c.settings(role_user("producer")), spool_dir=tmp_path / "spool",
                        spool_max_bytes=16 * 1024 * 1024)
        for topic in ("containers", "raw.events", "raw.syscalls", "producer.health"):
            for key, value in data[topic]:
                pub.publish(topic, key, value)
        assert pub.flush(60) == 0
        pub.close(10)
        assert pub.stats()["failed_deliveries"] == 0

        admin = role_user("admin")
        enriched = read_all(c, admin, [c.topic("enriched.events")], n_events + n_syscalls)
        assert len(enriched) == n_events + n_syscalls
        containers = {CODEC.decode(m.value(), expect="enriched_event")["container"]["id"] for m in enriched}
        assert containers == {"ctr-0", "ctr-1", "ctr-2"}
        profiles = read_all(c, admin, [c.topic("seccomp.profiles")], 3)
        assert {m.key().decode() for m in profiles} == {"acl-img-0", "acl-img-1", "acl-img-2"}

        # the SIEM role reads both alert topics in its own group, and commits
        siem = read_all(c, role_user("siem"), [c.topic("alerts"), c.topic("alerts.ocsf")],
                        2 * n_events + 1, group=f"{c.prefix}siem")
        alerts = [CODEC.decode(m.value(), expect="alert") for m in siem if m.topic() == c.topic("alerts")]
        ocsf = [json.loads(m.value()) for m in siem if m.topic() == c.topic("alerts.ocsf")]
        assert sum(a["rule_id"] == "ACL-1" for a in alerts) == n_events
        gaps = [a for a in alerts if a["rule_id"] == "producer-gap"]
        assert [(a["fields"]["first_seq"], a["fields"]["last_seq"]) for a in gaps] == [(str(hole), str(hole))]
        assert len(ocsf) == n_events

        for name, w in workers.items():
            assert w.proc.poll() is None, f"{name} died: {w.log.read_text()[-3000:]}"
            log = w.log.read_text(errors="replace")
            print(f"{name} log: {[ln for ln in log.splitlines() if 'authoriz' in ln.lower()][:5]}")
            assert "Traceback" not in log, f"{name}: {log[-3000:]}"
            refused = [ln for ln in log.splitlines() if "authorization failed" in ln.lower()
                       and "containers feed" not in ln]
            assert not refused, f"{name} was refused something it needs: {refused[:3]}"
    finally:
        for w in workers.values():
            w.stop()


# -- what each role may not do ------------------------------------------------------------------
def test_the_producer_may_not_write_alerts_nor_read_events(cluster: Cluster) -> None:
    c, user = cluster, role_user("producer")
    assert_topic_refused(produce_as(c, user, c.topic("alerts")), "producer writing alerts")
    read_refused(c, user, c.topic("raw.events"), KafkaError.TOPIC_AUTHORIZATION_FAILED)
    # its own topics stay writable: a refusal costs it nothing
    assert produce_as(c, user, c.topic("producer.health")) is None


CHANGELOGS = {"enrich": "enrich-lineage-changelog", "rules": "rules-engine-state-changelog",
              "seccomp": "seccomp-images-changelog", "health": "health-seq-changelog"}


def test_a_worker_may_not_write_events_nor_another_workers_changelog(cluster: Cluster) -> None:
    c = cluster
    names = [c.topic(t) for t in CHANGELOGS.values()]
    admin = AdminClient(c.conf(role_user("admin")))
    for fut in admin.create_topics([NewTopic(n, 3, 1) for n in names]).values():
        try:
            fut.result(30)
        except KafkaException as exc:  # created by the worker already
            assert exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exc
    deadline = time.monotonic() + 30
    while not all(c.ends(n) for n in names):  # exist (created here or by the workers)
        assert time.monotonic() < deadline
        time.sleep(0.5)
    for owner, changelog in CHANGELOGS.items():
        for user in [role_user(w) for w in CHANGELOGS if w != owner] + [role_user("producer")]:
            assert_topic_refused(produce_as(c, user, c.topic(changelog)), f"{user} writing {changelog}")
    assert_topic_refused(produce_as(c, role_user("enrich"), c.topic("raw.events")),
                         "enrich writing raw.events")
    assert_topic_refused(produce_as(c, role_user("rules"), c.topic("enriched.events")),
                         "rules writing enriched.events")
    # nor join another worker's group
    read_refused(c, role_user("rules"), c.topic("enriched.events"), KafkaError.GROUP_AUTHORIZATION_FAILED,
                 group=f"{c.prefix}enrich")


def test_the_siem_may_not_write_alerts_nor_read_events(cluster: Cluster) -> None:
    c, user = cluster, role_user("siem")
    assert_topic_refused(produce_as(c, user, c.topic("alerts")), "siem writing alerts")
    read_refused(c, user, c.topic("raw.events"), KafkaError.TOPIC_AUTHORIZATION_FAILED,
                 group=f"{c.prefix}siem")


def test_a_principal_without_a_role_may_do_nothing(cluster: Cluster) -> None:
    c = cluster
    for topic in ("raw.events", "alerts", "dlq"):
        assert_topic_refused(produce_as(c, STRANGER, c.topic(topic)), f"stranger writing {topic}")
    # it may not even learn that a topic exists, nor use a group
    stranger = AdminClient(c.conf(STRANGER))
    md = stranger.list_topics(timeout=30)
    assert not [t for t in md.topics if t.startswith(c.prefix)], "the stranger sees the topics"
    alerts = c.topic("alerts")
    assert_topic_refused(stranger.list_topics(alerts, timeout=30).topics[alerts].error,
                         "stranger describing alerts")
    read_refused(c, STRANGER, c.topic("alerts"), KafkaError.GROUP_AUTHORIZATION_FAILED)
    admin = AdminClient(c.conf(role_user("admin")))
    before = set(admin.list_topics(timeout=30).topics)
    res = c.cli(STRANGER, "topics", "create", prefix=f"{c.prefix}stray.")
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert "refused User:eunomia-stranger creating" in lines[0] and "AUTHORIZATION_FAILED" in lines[0]
    assert set(admin.list_topics(timeout=30).topics) == before
    # and a user the broker does not know is not let in at all
    res = c.cli("eunomia-nobody", "acls", "check")
    assert res.returncode == 1 and "refused the credentials" in res.stderr, res.stderr


def test_only_the_admin_manages_acls(cluster: Cluster) -> None:
    c = cluster
    admin = AclAdmin(c.settings(role_user("admin")))
    before = admin.describe()
    for user in (role_user("producer"), role_user("siem"), STRANGER):
        res = c.cli(user, "acls", "apply", "--no-quotas")
        lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
        assert res.returncode == 1 and len(lines) == 1, res.stderr
        assert f"Kafka refused User:{user} changing ACLs (CLUSTER_AUTHORIZATION_FAILED" in lines[0]
        res = c.cli(user, "acls", "check")
        assert res.returncode == 1, res.stdout + res.stderr
        assert f"Kafka refused User:{user} reading the ACLs (CLUSTER_AUTHORIZATION_FAILED" in res.stderr
    assert admin.describe() == before


def test_check_names_what_is_missing_and_apply_removes_what_no_longer_belongs(cluster: Cluster) -> None:
    c = cluster
    admin_user = role_user("admin")
    res = c.cli(admin_user, "acls", "check")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "may do what its role needs" in res.stdout

    # on a prefix nothing was granted for, every role lacks everything
    fresh = f"f{uuid.uuid4().hex[:6]}."
    res = c.cli(admin_user, "acls", "check", prefix=fresh)
    assert res.returncode == 1
    refused_roles = {ln.split()[0] for ln in res.stdout.splitlines()[2:-1]}
    assert refused_roles == {"producer", "enrich", "rules", "seccomp", "health", "siem", "admin"}

    admin = AclAdmin(c.settings(admin_user))
    siem_group = Acl("User:eunomia-siem", "group", "literal", f"{c.prefix}siem", "read")
    stale = Acl("User:host-a", "topic", "literal", c.topic("raw.events"), "read")
    retired = Acl("User:host-z", "topic", "literal", c.topic("raw.events"), "write")
    foreign = Acl("User:host-a", "topic", "literal", "billing.events", "read")
    admin.delete([siem_group])
    admin.create([stale, retired, foreign])
    time.sleep(1)  # ACL changes reach the authorizer through the metadata log
    res = c.cli(admin_user, "acls", "check", "--role", "siem")
    assert res.returncode == 1
    rows = [ln.split() for ln in res.stdout.splitlines()]
    assert ["siem", "User:eunomia-siem", "read", "group", f"{c.prefix}siem"] in rows, res.stdout
    assert len(rows) == 4, res.stdout  # the client line, the header, that row, the summary
    read_refused(c, role_user("siem"), c.topic("alerts"), KafkaError.GROUP_AUTHORIZATION_FAILED,
                 group=f"{c.prefix}siem")

    res = c.cli(admin_user, "acls", "apply", "--no-quotas")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"- {stale}" in res.stdout and f"- {retired}" in res.stdout and f"+ {siem_group}" in res.stdout
    assert "1 added, 2 removed" in res.stdout
    after = set(admin.describe())
    assert siem_group in after and foreign in after and not {stale, retired} & after
    admin.delete([foreign])


def test_a_producer_refused_for_want_of_acls_spools_and_delivers_once_granted(
        cluster: Cluster, tmp_path: Path) -> None:
    """A host started before its ACLs were applied: its writes are refused (librdkafka
    even refuses them itself once it knows, and its idempotent producer fails fatally for
    want of a producer id); it keeps its events, in order, on disk, says why, and sends
    them all once the ACLs exist."""
    c = cluster
    n = 50
    pub = Publisher(c.settings(LATE), spool_dir=tmp_path / "spool", spool_max_bytes=16 * 1024 * 1024,
                    stall_seconds=2.0)
    deadline = time.monotonic() + 60
    try:
        for seq in range(1, n + 1):
            pub.publish("raw.events", LATE.encode(), seq.to_bytes(8, "big") + b"late", seq=seq)
        while pub.stats()["reachable"]:  # until it has met the refusal
            assert time.monotonic() < deadline, pub.stats()
            pub.poll(0.1)
        for _ in range(30):  # and lived with it a while (a new producer instance, refused again)
            pub.poll(0.1)
        assert pub.delivered == 0
        settings = c.settings(role_user("admin"))
        from eunomia.kafka.acls import plan

        AclAdmin(settings).create(plan(settings, {"producer": [f"User:{LATE}"]}, ["producer"]))
        deadline = time.monotonic() + 120
        while pub.delivered < n:
            assert time.monotonic() < deadline, pub.stats()
            pub.poll(0.1)
        stats = pub.stats()
    finally:
        pub.close(10)
    msgs = read_all(c, role_user("admin"), [c.topic("raw.events")], 10**9, timeout=15, key=LATE.encode())
    got = [int.from_bytes(m.value()[:8], "big") for m in msgs]
    print(f"\nrefused host: {stats['failed_deliveries']} refused deliveries, then all {n} delivered")
    assert got == list(range(1, n + 1)), f"lost, repeated or reordered: {got}"


# -- quotas ---------------------------------------------------------------------------------------
def test_a_host_over_its_quota_is_throttled_and_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    """host-a floods raw.events at 4x its quota for 6 s (24 s worth of quota; the broker
    lets about 10 s worth pass before it throttles) while host-b sends 10 events/s; both
    through the producer's Publisher. Arrival latency of host-b is measured alone and
    during the flood, and how late host-a's last events arrive."""
    c = cluster
    topic = c.topic("raw.events")
    size, flood_s_planned, over = 1024, 6, 4
    flood_n = over * QUOTA // size * flood_s_planned
    arrivals: dict[str, list[tuple[int, int, int]]] = {h: [] for h in HOSTS}  # seq, sent ns, arrived ns
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        cons = Consumer({**c.conf(role_user("admin")), "group.id": f"lat-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False})
        parts = c.ends(topic)
        cons.assign([TopicPartition(topic, p, off) for p, off in parts.items()])
        ready.set()
        try:
            while not stop.is_set():
                for m in cons.consume(1000, 0.2):
                    if m.error() is None and m.key() in (b"host-a", b"host-b"):
                        v = m.value()
                        arrivals[m.key().decode()].append((int.from_bytes(v[:8], "big"),
                                                           int.from_bytes(v[8:16], "big"), time.time_ns()))
        finally:
            cons.close()

    def value(seq: int, n: int) -> bytes:
        return seq.to_bytes(8, "big") + time.time_ns().to_bytes(8, "big") + os.urandom(n - 16)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert ready.wait(30)
    pubs = {h: Publisher(c.settings(h), spool_dir=tmp_path / h, spool_max_bytes=64 * 1024 * 1024)
            for h in HOSTS}
    seq_a = seq_b = 0

    def send_for(seconds: float, flood: bool, until: Any = None) -> None:
        """Every 0.1 s: one event of host-b and, flooding, a tenth of host-a's rate."""
        nonlocal seq_a, seq_b
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            seq_b += 1
            pubs["host-b"].publish("raw.events", b"host-b", value(seq_b, 200), seq=seq_b)
            for _ in range(min(flood_n - seq_a, flood_n // (10 * flood_s_planned)) if flood else 0):
                seq_a += 1
                pubs["host-a"].publish("raw.events", b"host-a", value(seq_a, size), seq=seq_a)
            t_next = time.monotonic() + 0.1
            while time.monotonic() < t_next:
                for p in pubs.values():
                    p.poll(0.01)

    try:
        send_for(5.0, flood=False)  # host-b alone: its normal latency
        baseline_n = seq_b
        t_flood = time.monotonic()
        a_done = lambda: len(arrivals["host-a"]) >= flood_n  # noqa: E731
        send_for(180.0, flood=True, until=a_done)
        flood_s = time.monotonic() - t_flood
        for p in pubs.values():
            assert p.flush(60) == 0
        deadline = time.monotonic() + 30
        while len(arrivals["host-b"]) < seq_b and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        reader.join(10)
        stats = {h: p.stats() for h, p in pubs.items()}
        for p in pubs.values():
            p.close(10)

    a, b = arrivals["host-a"], arrivals["host-b"]
    assert [s for s, _, _ in a] == list(range(1, flood_n + 1)), "host-a: events lost, repeated or reordered"
    assert [s for s, _, _ in b] == list(range(1, seq_b + 1)), "host-b: events lost, repeated or reordered"
    assert stats["host-a"]["throttled_s"] > 0, "the broker never throttled host-a"
    assert stats["host-b"]["throttled_s"] == 0, "host-b was throttled though under its quota"

    def p50_ms(rows: list[tuple[int, int, int]]) -> float:
        return statistics.median((arr - sent) / 1e6 for _, sent, arr in rows)

    base, during = p50_ms(b[:baseline_n]), p50_ms(b[baseline_n:])
    a_late = max((arr - sent) / 1e9 for _, sent, arr in a)
    print(f"\nquota {QUOTA} B/s: host-a sent {flood_n} x {size} B in {flood_s_planned}s, all arrived "
          f"{flood_s:.1f}s after its first (the last {a_late:.1f}s late), throttled "
          f"{stats['host-a']['throttled_s']:.1f}s in total; "
          f"host-b p50 latency {base:.1f} ms alone, {during:.1f} ms during the flood "
          f"({during / base:.2f}x), {len(b) - baseline_n} events during the flood")
