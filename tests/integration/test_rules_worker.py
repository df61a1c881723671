"""The rules worker on the real broker, as real ``eunomia worker rules`` processes.

Every expectation comes from the same engine run in-process over the same
events, so the tests say "live equals offline". Event times lie an hour ahead so
a pause never makes a scenario late, and absence of an alert is concluded only
after two rounds of sentinel alerts show the worker got past that point.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from eunomia.config import Settings
from eunomia.kafka.topics import create_topics
from eunomia.processors.rules import Engine, RuleSet, load_files, pack_files
from eunomia.schemas import AvroCodec
from tests.support.enriched_events import S, ev, parent
from tests.support.ports import free_port_block
from tests.support.workers import eunomia_env

pytestmark = pytest.mark.kafka
CODEC = AvroCodec()
END_OF_TIME = 2**62
LATENESS_NS = 2 * S  # the worker's default allowed lateness
SENTINEL_RULE = "EUN-1008"  # kernel module load: single-event, fires even for late events


# -- scenarios ---------------------------------------------------------------------------------

@dataclass
class Item:
    """One enriched event as it goes on enriched.events: key, partition, Avro bytes,
    and the dict the worker decodes from those bytes."""

    key: bytes
    partition: int
    value: bytes
    record: dict[str, Any]


@dataclass
class Scenario:
    items: list[Item] = field(default_factory=list)
    keys: dict[bytes, int] = field(default_factory=dict)  # container key -> partition


def _host(host: str) -> dict[str, Any]:
    return {"id": host, "boot_id": "b1"}


def attack_events(host: str, ctr: str, t0: float, tag: str) -> list[dict[str, Any]]:
    """Every rule of the default pack, spread over one container's life from t0 (s)."""
    e: list[dict[str, Any]] = []

    def add(kind: str, dt: float, **kw: Any) -> None:
        e.append(ev(kind, t0 + dt, container=ctr, host=_host(host), eid=f"{tag}-{len(e)}", **kw))

    sh = f"{tag}-sh"
    tree = [parent("sh", sh, 50), parent("runc", "p0")]
    add("exec", 0, name="sh", exec_id=sh, stdio_socket="ipv4")              # 1001, 1002, 3003 start
    for i, n in enumerate(["id", "uname", "whoami"]):
        add("exec", 1 + i, name=n, exec_id=f"{tag}-r{i}", ancestors=tree)   # 2003
    add("open", 4, file={"path": "/etc/passwd"})                            # 3001 with discovery
    add("connect", 5, name="nc", exec_id=f"{tag}-nc", ancestors=tree, dport=4444)  # 1002, 2002
    add("open", 6, file={"path": "/etc/shadow"})                            # 1003
    add("open", 7, file={"path": "/tmp/payload", "write": True})
    add("exec", 8, name="payload", executable="/tmp/payload", exec_id=f"{tag}-pl",
        exe_origin="upper_layer")                                           # 1005
    for i in range(5):
        add("open", 9 + i * 0.5, file={"path": "/etc/shadow"}, outcome="failure")  # 1015
    for i in range(20):
        add("connect", 15 + i, name="scan", exec_id=f"{tag}-scan", dport=2000 + i)  # 1014
    add("memfd_create", 36, syscall="memfd_create", str_arg="x", exec_id=f"{tag}-m")
    add("exec", 37, executable="/memfd:x (deleted)", exec_id=f"{tag}-m")   # 1010
    add("setuid", 38, exec_id=f"{tag}-esc", syscall="setuid", sargs=[0], uid=1000)
    add("exec", 39, name="sh", exec_id=f"{tag}-esc", uid=0)                 # 1011, 1001
    add("open", 40, file={"path": "/etc/hosts", "write": True})             # 1004
    add("exec", 41, name="apk", args=["apk", "add", "curl"], exec_id=f"{tag}-apk")  # 1006
    add("unshare", 42, syscall="unshare")                                   # 1007
    add("ptrace", 43, syscall="ptrace", sargs=[16, 77], target_pid=77)     # 1009
    add("open", 44, file={"path": "/var/run/docker.sock"})                  # 1012
    add("open", 45, file={"path": "/sys/fs/cgroup/x/release_agent", "write": True})  # 1013
    add("exec", 46, name="nc", exec_id=f"{tag}-bind")                       # 2001
    add("listen", 47, name="nc", exec_id=f"{tag}-bind")
    add("accept", 48, name="nc", exec_id=f"{tag}-bind")                     # 3002
    add("unlink", 49, file={"path": "/root/.ash_history", "write": True})  # 2004
    add("open", 50, file={"path": "/root/.ssh/authorized_keys", "write": True})  # 2005
    add("bpf", 51, syscall="bpf")                                           # 2006
    return e


def benign_events(host: str, ctr: str, t0: float, tag: str, n: int = 40,
                  rng: random.Random | None = None) -> list[dict[str, Any]]:
    """What a web server does all day: its own binary, reads, cache writes, HTTPS out."""
    rng = rng or random.Random(0)
    e: list[dict[str, Any]] = []
    for i in range(n):
        t = t0 + rng.uniform(0, 120)
        c = {"container": ctr, "host": _host(host), "eid": f"{tag}-{i}", "name": "nginx",
             "exec_id": f"{tag}-nginx"}
        pick = i % 4
        if pick == 0:
            e.append(ev("open", t, file={"path": f"/srv/www/{i}.html"}, **c))
        elif pick == 1:
            e.append(ev("open", t, file={"path": f"/var/cache/nginx/{i}", "write": True}, **c))
        elif pick == 2:
            e.append(ev("connect", t, dport=443, **c))
        else:
            e.append(ev("exec", t, executable="/usr/sbin/nginx", **c))
    return e


def clock_event(host: str, ctr: str, t: float, tag: str) -> dict[str, Any]:
    """A read that no rule looks at, late enough to close every window of the key."""
    return ev("open", t, file={"path": "/tmp/clock"}, container=ctr, host=_host(host), eid=tag)


def sentinel_event(host: str, ctr: str, t: float, tag: str) -> dict[str, Any]:
    return ev("finit_module", t, syscall="finit_module", str_arg="sentinel", container=ctr,
              host=_host(host), eid=tag)


def build(events: list[dict[str, Any]], keys: dict[bytes, int]) -> list[Item]:
    """Order by event time (ties by id) and encode; each key keeps one partition,
    as the enrich worker's ``host/container`` key does."""
    out = []
    for e in sorted(events, key=lambda x: (x["event"]["ts_ns"], x["event"]["id"])):
        key = f"{e['host']['id']}/{e['container']['id']}".encode()
        if key not in keys:
            keys[key] = len(keys) % 3
        value = CODEC.encode("enriched_event", e)
        out.append(Item(key, keys[key], value, CODEC.decode(value, expect="enriched_event")))
    return out


def scenario(tag: str, *, attacks: int, benign: int, fillers: int = 40) -> Scenario:
    """Attack and benign containers on two hosts, interleaved in event time, then a
    clock event per container."""
    t0 = time.time() + 3600
    rng = random.Random(tag)
    events: list[dict[str, Any]] = []
    ctrs: list[tuple[str, str]] = []
    for i in range(attacks):
        host, ctr = f"h{i % 2}", f"atk-{tag}-{i}"
        ctrs.append((host, ctr))
        events += attack_events(host, ctr, t0 + i * 7, f"{ctr}-e")
    for i in range(benign):
        host, ctr = f"h{i % 2}", f"ben-{tag}-{i}"
        ctrs.append((host, ctr))
        events += benign_events(host, ctr, t0, f"{ctr}-e", n=fillers, rng=rng)
    sc = Scenario()
    sc.items = build(events, sc.keys)
    sc.items += build([clock_event(h, c, t0 + 3 * 3600, f"{c}-clock") for h, c in ctrs], sc.keys)
    return sc


def offline_alerts(ruleset: RuleSet, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The engine over the whole input with the worker's lateness, then past every window."""
    engine = Engine(ruleset, lateness_ns=LATENESS_NS)
    out = [a for r in records for a in engine.process(r)]
    return out + engine.flush() + engine.advance_watermark(END_OF_TIME)


def pack() -> RuleSet:
    return load_files(pack_files())


# -- Kafka and worker plumbing ----------------------------------------------------------------------

def publish(settings: Settings, items: list[Item]) -> None:
    p = Producer({**settings.kafka.librdkafka(), "enable.idempotence": True, "linger.ms": 5})
    topic = settings.topic("enriched.events")
    for it in items:
        while True:
            try:
                p.produce(topic, it.value, it.key, partition=it.partition)
                break
            except BufferError:
                p.poll(0.05)
    assert p.flush(60) == 0, "enriched events not acknowledged"


class TopicReader:
    """Everything on one topic from the beginning, read as it arrives."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.topic = settings.topic(name)
        self.consumer = Consumer({**settings.kafka.librdkafka(), "group.id": f"t-{uuid.uuid4().hex}",
                                  "enable.auto.commit": False})
        md = self.consumer.list_topics(self.topic, timeout=30).topics[self.topic]
        self.parts = sorted(md.partitions)
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in self.parts])
        self.messages: list[tuple[bytes, bytes]] = []
        self.position = {p: 0 for p in self.parts}

    def poll(self, seconds: float) -> None:
        for m in self.consumer.consume(1000, seconds):
            if m.error() is None:
                self.messages.append((m.key(), m.value()))
                self.position[m.partition()] = m.offset() + 1

    def until(self, pred: Callable[[], bool], what: str, timeout: float = 120.0,
              alive: Callable[[], None] = lambda: None) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            alive()
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            self.poll(0.5)

    def drain(self, timeout: float = 60.0) -> None:
        """Read up to the high watermarks of this moment."""
        high = {p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
                for p in self.parts}
        self.until(lambda: all(self.position[p] >= high[p] for p in self.parts),
                   "the rest of the topic", timeout)

    def close(self) -> None:
        self.consumer.close()


class Alerts:
    """``alerts`` (Avro) and ``alerts.ocsf`` (JSON) read side by side."""

    def __init__(self, settings: Settings) -> None:
        self.avro = TopicReader(settings, "alerts")
        self.ocsf = TopicReader(settings, "alerts.ocsf")

    def decoded(self) -> list[tuple[bytes, dict[str, Any]]]:
        return [(k, CODEC.decode(v, expect="alert")) for k, v in self.avro.messages]

    def ids(self) -> set[str]:
        return {a["alert_id"] for _, a in self.decoded()}

    def close(self) -> None:
        self.avro.close()
        self.ocsf.close()


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def metric(self, name: str, labels: str = "") -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        pat = rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$"
        return sum(float(m.group(2)) for m in re.finditer(pat, text, re.M)
                   if labels in (m.group(1) or ""))

    def evaluated(self) -> float:
        try:
            return self.metric("eunomia_rules_events_evaluated_total")
        except OSError:
            return 0.0

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"rules worker exited with {self.proc.returncode}:\n"
                        f"{self.log.read_text(errors='replace')[-4000:]}")

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False


def start_worker(settings: Settings, workdir: Path, name: str, *args: str) -> Worker:
    """``eunomia worker rules`` in its own session, run from ``workdir`` so its
    faust data folder lands there; stdout and stderr to ``workdir/name.log``."""
    port = free_port_block()
    log = workdir / f"{name}.log"
    env = {**eunomia_env(settings), "EUNOMIA_METRICS_PORT": str(port)}
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "eunomia", "worker", "rules", "--loglevel",
                                 "INFO", *args], env=env, cwd=workdir, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    return Worker(proc, port, log)


def start_ready(started: list[Worker], settings: Settings, workdir: Path, name: str,
                *args: str, timeout: float = 90.0) -> Worker:
    """A ready worker (its table recovered, so it consumes), as ``eunomia up``
    starts one: one not ready in 90 s (imports alone took 35 s on a loaded
    host) is replaced, up to three tries. Workers stalled at start-up about one
    time in ten until /readyz stopped touching faust's services from the HTTP
    thread (processors/app.py); the retry stays as a guard and is logged.
    Every process started goes in ``started``.
    A worker joining a group with a just-killed member waits for that member's
    session to expire (10 s: ``eunomia_env`` sets EUNOMIA_KAFKA__GROUP_SESSION_TIMEOUT_S): give it
    a longer ``timeout``."""
    for attempt in range(1, 4):
        w = start_worker(settings, workdir, f"{name}-{attempt}", *args)
        started.append(w)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            w.check_alive()
            if w.ready():
                return w
            time.sleep(0.5)
        w.proc.send_signal(signal.SIGUSR1)  # mode logs its task stacks: where it waits
        time.sleep(1)
        print(f"{name}: not ready in {timeout:.0f} s, replaced; task stacks in {w.log}", file=sys.stderr)
        stop(w)
    pytest.fail(f"{name}: three workers in a row not ready in {timeout:.0f} s")


def stop(w: Worker) -> None:
    if w.proc.poll() is None:
        w.proc.terminate()
        try:
            w.proc.wait(30)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[list[Worker]]:
    """Started workers go in this list; every one is stopped at the end."""
    create_topics(settings)
    started: list[Worker] = []
    try:
        yield started
    finally:
        for w in started:
            stop(w)


def sentinel_rounds(settings: Settings, sc: Scenario, alerts: Alerts, t: float,
                    alive: Callable[[], None]) -> set[str]:
    """Two rounds of sentinels on every key of the scenario, each awaited; returns
    the sentinel alert ids (to leave out of comparisons)."""
    hosts = {it.key: (it.record["host"]["id"], it.record["container"]["id"]) for it in sc.items}
    ids: set[str] = set()
    for rnd in range(2):
        tags = {f"sentinel-{rnd}-{k.decode()}" for k in sc.keys}
        recs = [sentinel_event(h, c, t + rnd, f"sentinel-{rnd}-{k.decode()}")
                for k, (h, c) in hosts.items()]
        publish(settings, build(recs, dict(sc.keys)))

        def seen(tags: set[str] = tags) -> bool:
            got = {a["events"][0]["id"] for _, a in alerts.decoded() if a["rule_id"] == SENTINEL_RULE}
            return tags <= got

        alerts.avro.until(seen, f"sentinel round {rnd}", alive=alive)
    for _, a in alerts.decoded():
        if a["events"][0]["id"].startswith("sentinel-"):
            ids.add(a["alert_id"])
    alerts.avro.drain()
    alerts.ocsf.drain()
    return ids


def assert_duplicates_identical(alerts: Alerts) -> None:
    """At-least-once may repeat an alert; a repeat must be the same alert, same id."""
    by_id: dict[str, bytes] = {}
    for k, v in alerts.avro.messages:
        a = CODEC.decode(v, expect="alert")
        assert k == a["alert_id"].encode(), "alerts are keyed by alert_id"
        assert by_id.setdefault(a["alert_id"], v) == v, f"two different alerts with id {a['alert_id']}"


# -- tests ------------------------------------------------------------------------------------------

def test_scenarios_fire_each_pack_rule_offline() -> None:
    """The scenarios are worth running live: offline, the attack fires every rule
    of the pack and the benign containers fire nothing."""
    sc = scenario("self", attacks=1, benign=2)
    got = offline_alerts(pack(), [it.record for it in sc.items])
    # every rule but the sentinels' own
    assert {a["rule_id"] for a in got} == {r.id for r in pack().rules if r.enabled} - {SENTINEL_RULE}
    assert not [a for a in got if a["container_id"].startswith("ben-")]
    benign_only = scenario("self2", attacks=0, benign=3)
    assert offline_alerts(pack(), [it.record for it in benign_only.items]) == []


def test_attack_alerts_equal_offline_and_ocsf_mirrors_them(settings: Settings, workers: list[Worker],
                                                             tmp_path: Path) -> None:
    sc = scenario(uuid.uuid4().hex[:6], attacks=3, benign=3)
    expected = {a["alert_id"] for a in offline_alerts(pack(), [it.record for it in sc.items])}
    w = start_ready(workers, settings, tmp_path, "rules")
    alerts = Alerts(settings)
    try:
        publish(settings, sc.items)
        alerts.avro.until(lambda: expected <= alerts.ids(), "every offline alert id", alive=w.check_alive)
        t_end = sc.items[-1].record["event"]["ts_ns"] / S + 1
        sentinels = sentinel_rounds(settings, sc, alerts, t_end, w.check_alive)
        assert alerts.ids() - sentinels == expected
        assert_duplicates_identical(alerts)
        decoded = [a for _, a in alerts.decoded() if a["alert_id"] not in sentinels]
        assert not [a for a in decoded if a["container_id"].startswith("ben-")]

        ocsf = {k.decode(): json.loads(v) for k, v in alerts.ocsf.messages}
        assert set(ocsf) == alerts.ids()
        for a in decoded:
            f = ocsf[a["alert_id"]]
            assert f["class_uid"] == 2004 and f["category_uid"] == 2
            assert f["severity_id"] == a["severity_id"] and 1 <= f["severity_id"] <= 6
            assert f["finding_info"]["uid"] == a["alert_id"]
            assert f["finding_info"]["analytic"]["uid"] == a["rule_id"]
            assert [e["uid"] for e in f["finding_info"]["related_events"]] == [e["id"] for e in a["events"]]
            assert f["metadata"]["product"]["name"] == "Eunomia Stream"
            assert f["metadata"]["uid"] == a["alert_id"]
    finally:
        alerts.close()


def test_benign_scenario_raises_nothing(settings: Settings, workers: list[Worker], tmp_path: Path) -> None:
    sc = scenario(uuid.uuid4().hex[:6], attacks=0, benign=6, fillers=200)
    assert offline_alerts(pack(), [it.record for it in sc.items]) == []
    w = start_ready(workers, settings, tmp_path, "rules")
    alerts = Alerts(settings)
    try:
        publish(settings, sc.items)
        t_end = sc.items[-1].record["event"]["ts_ns"] / S + 1
        sentinels = sentinel_rounds(settings, sc, alerts, t_end, w.check_alive)
        assert len(sentinels) == 2 * len(sc.keys)
        assert alerts.ids() == sentinels, [a for _, a in alerts.decoded() if a["alert_id"] not in sentinels]
        assert w.evaluated() >= len(sc.items)
    finally:
        alerts.close()


def test_killed_worker_replaced_alert_ids_equal_offline(settings: Settings, workers: list[Worker],
                                                         tmp_path: Path) -> None:
    """Two workers in one group; one is SIGKILLed while it works through the first
    part of the stream; a replacement joins and the rest follows. Multi-event
    rules straddle the kill, so their state must come back from the changelog."""
    sc = scenario(uuid.uuid4().hex[:6], attacks=6, benign=6, fillers=1500)
    expected = {a["alert_id"] for a in offline_alerts(pack(), [it.record for it in sc.items])}
    cut = len(sc.items) * 3 // 5
    first, rest = sc.items[:cut], sc.items[cut:]
    a = start_ready(workers, settings, tmp_path, "rules-a")
    b = start_ready(workers, settings, tmp_path, "rules-b")
    alerts = Alerts(settings)
    try:
        publish(settings, first)
        deadline = time.monotonic() + 180
        while True:  # the victim: whichever worker is busy with the stream first
            a.check_alive()
            b.check_alive()
            victim = next((w for w in (a, b) if w.evaluated() > 0), None)
            if victim is not None:
                break
            if time.monotonic() > deadline:
                pytest.fail("no worker evaluated anything")
            time.sleep(0.2)
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(30)
        survivor = b if victim is a else a
        publish(settings, rest)
        replacement = start_ready(workers, settings, tmp_path, "rules-c", timeout=180)

        def alive() -> None:
            survivor.check_alive()
            replacement.check_alive()

        alerts.avro.until(lambda: expected <= alerts.ids(), "every offline alert id", timeout=300,
                          alive=alive)
        t_end = sc.items[-1].record["event"]["ts_ns"] / S + 1
        sentinels = sentinel_rounds(settings, sc, alerts, t_end, alive)
        assert alerts.ids() - sentinels == expected
        assert_duplicates_identical(alerts)
    finally:
        alerts.close()


SITE_RULE = """\
- rule: Canary file opened
  id: SITE-1
  desc: the test's own rule
  condition: event.kind = open and file.path = /tmp/eunomia-canary
  output: "canary opened (proc=%process.name container=%container.id)"
  level: warning
  tags: [site]
"""

BROKEN_RULE = """\
- rule: Canary file opened
  id: SITE-1
  desc: the test's own rule, now with a syntax error
  condition: event.kind = open and (file.path = /tmp/eunomia-canary
  output: "canary opened"
  level: warning
"""


def test_sighup_with_broken_rule_file_keeps_old_rules_and_state(settings: Settings, workers: list[Worker],
                                                                 tmp_path: Path) -> None:
    """A broken file on SIGHUP: rejected with file:line:column, the worker runs on
    with the old rules and their state. Then a good one: the changed site rule
    takes effect and a sequence begun before the reload still completes."""
    site = tmp_path / "site.yaml"
    site.write_text(SITE_RULE)
    ruleset = load_files([*pack_files(), site])
    w = start_ready(workers, settings, tmp_path, "rules", "--rules", str(site))
    t0 = time.time() + 3600
    tag = uuid.uuid4().hex[:6]
    ctr, sh = f"hup-{tag}", f"hup-{tag}-sh"
    tree = [parent("sh", sh, 50), parent("runc", "p0")]
    c = {"container": ctr, "host": _host("h1")}
    keys: dict[bytes, int] = {}
    before = build([ev("open", t0, file={"path": "/tmp/eunomia-canary"}, eid=f"{tag}-c1", **c),
                    ev("exec", t0 + 1, name="sh", exec_id=sh, eid=f"{tag}-sh", **c)], keys)
    after = build([ev("open", t0 + 5, file={"path": "/tmp/eunomia-canary"}, eid=f"{tag}-c2", **c),
                   ev("connect", t0 + 6, name="nc", exec_id=f"{tag}-nc", ancestors=tree, dport=4444,
                      eid=f"{tag}-nc", **c)], keys)
    old = offline_alerts(ruleset, [it.record for it in before + after])

    def ids_of(alerts: list[dict[str, Any]], rule: str, first_event: str) -> set[str]:
        return {a["alert_id"] for a in alerts if a["rule_id"] == rule
                and a["events"][0]["id"] == first_event}

    canary1, canary2 = ids_of(old, "SITE-1", f"{tag}-c1"), ids_of(old, "SITE-1", f"{tag}-c2")
    reverse_shell = ids_of(old, "EUN-2007", f"{tag}-sh")  # the shell before the reload, the connect after
    assert len(canary1) == len(canary2) == len(reverse_shell) == 1
    alerts = Alerts(settings)
    try:
        publish(settings, before)
        alerts.avro.until(lambda: canary1 <= alerts.ids(), "the canary alert", alive=w.check_alive)

        site.write_text(BROKEN_RULE)
        w.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while w.metric("eunomia_rules_reloads_total", 'result="rejected"') < 1:
            w.check_alive()
            if time.monotonic() > deadline:
                pytest.fail("the reload was not rejected")
            time.sleep(0.2)
        log = w.log.read_text(errors="replace")
        assert "rule reload rejected, old rules keep running" in log
        assert re.search(rf"{re.escape(str(site))}:\d+:\d+", log), log[-2000:]
        assert w.metric("eunomia_rules_reloads_total", 'result="ok"') == 0

        publish(settings, after)
        alerts.avro.until(lambda: (canary2 | reverse_shell) <= alerts.ids(),
                          "the old site rule and the sequence begun before the reload",
                          alive=w.check_alive)

        # a good reload: SITE-1 now watches another path; EUN-2007 is unchanged
        sh2 = f"hup-{tag}-sh2"
        tree2 = [parent("sh", sh2, 50), parent("runc", "p0")]
        begun = build([ev("exec", t0 + 10, name="sh", exec_id=sh2, eid=f"{tag}-sh2", **c)], keys)
        finished = build([ev("open", t0 + 14, file={"path": "/tmp/eunomia-canary-2"}, eid=f"{tag}-c3", **c),
                          ev("connect", t0 + 15, name="nc", exec_id=f"{tag}-nc2", ancestors=tree2,
                             dport=4444, eid=f"{tag}-nc2", **c)], keys)
        changed = SITE_RULE.replace("/tmp/eunomia-canary", "/tmp/eunomia-canary-2")
        (tmp_path / "next.yaml").write_text(changed)
        new = offline_alerts(load_files([*pack_files(), tmp_path / "next.yaml"]),
                             [it.record for it in before + after + begun + finished])
        shell2 = ids_of(old + offline_alerts(ruleset, [it.record for it in begun]), "EUN-1001",
                        f"{tag}-sh2")
        canary3, reverse_shell2 = ids_of(new, "SITE-1", f"{tag}-c3"), ids_of(new, "EUN-2007", f"{tag}-sh2")
        assert len(shell2) == len(canary3) == len(reverse_shell2) == 1
        publish(settings, begun)
        alerts.avro.until(lambda: shell2 <= alerts.ids(), "the second shell", alive=w.check_alive)
        site.write_text(changed)
        w.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while w.metric("eunomia_rules_reloads_total", 'result="ok"') < 1:
            w.check_alive()
            if time.monotonic() > deadline:
                pytest.fail("the good reload was not applied")
            time.sleep(0.2)
        publish(settings, finished)
        alerts.avro.until(lambda: (canary3 | reverse_shell2) <= alerts.ids(),
                          "the new site rule and the sequence begun before the good reload",
                          alive=w.check_alive)
        w.check_alive()
    finally:
        alerts.close()



THRESH_RULE = """\
- rule: Canary opened again and again
  id: SITE-2
  desc: the test's own stateful rule
  condition: event.kind = open and file.path = /tmp/eunomia-thr
  output: "canary opened repeatedly (container=%container.id)"
  level: warning
  tags: [site]
  threshold:
    group-by: [container.id]
    timespan: 60s
    count: {gte: 3}
"""


def test_rule_changed_while_no_worker_ran_restarts_its_windows(settings: Settings, workers: list[Worker],
                                                              tmp_path: Path) -> None:
    """A worker saves a threshold window (two of three opens), stops; the rule
    file changes (now four opens) before the next worker starts. The saved
    window belonged to the old rule: it is dropped and said so, not restored into
    the new one, so the alert is the one the new rule gives the later events alone."""
    site = tmp_path / "site.yaml"
    site.write_text(THRESH_RULE)
    tag = uuid.uuid4().hex[:6]
    ctr, t0 = f"thr-{tag}", time.time() + 7200
    c = {"container": ctr, "host": _host("h1")}
    keys: dict[bytes, int] = {}

    def opens(ts: list[float], n0: int) -> list[dict[str, Any]]:
        return [ev("open", t, file={"path": "/tmp/eunomia-thr"}, eid=f"{tag}-o{n0 + i}", **c)
                for i, t in enumerate(ts)]

    pre = build([*opens([t0, t0 + 1], 0), clock_event("h1", ctr, t0 + 5, f"{tag}-k0")], keys)
    post = build([*opens([t0 + 6, t0 + 7, t0 + 8, t0 + 9], 2), clock_event("h1", ctr, t0 + 30, f"{tag}-k1")],
                 keys)
    changed = THRESH_RULE.replace("count: {gte: 3}", "count: {gte: 4}")
    (tmp_path / "changed.yaml").write_text(changed)
    new_rules = load_files([*pack_files(), tmp_path / "changed.yaml"])
    right = {a["alert_id"] for a in offline_alerts(new_rules, [it.record for it in post])
             if a["rule_id"] == "SITE-2"}
    wrong = {a["alert_id"] for a in offline_alerts(new_rules, [it.record for it in pre + post])
             if a["rule_id"] == "SITE-2"}
    assert len(right) == 1 and right != wrong, (right, wrong)

    first = start_ready(workers, settings, tmp_path, "rules-a", "--rules", str(site))
    publish(settings, pre)
    deadline = time.monotonic() + 60
    while first.evaluated() < len(pre):
        first.check_alive()
        assert time.monotonic() < deadline, "the first worker did not evaluate the events"
        time.sleep(0.2)
    time.sleep(3)  # the batch's state is saved after its alerts are flushed
    stop(first)

    site.write_text(changed)
    second = start_ready(workers, settings, tmp_path, "rules-b", "--rules", str(site))
    alerts = Alerts(settings)
    try:
        publish(settings, post)
        alerts.avro.until(lambda: right <= alerts.ids(), "the changed rule's alert",
                          alive=second.check_alive)
        alerts.avro.drain()
        assert not (wrong - right) & alerts.ids(), "the old rule's window was restored into the new rule"
    finally:
        alerts.close()
    log = second.log.read_text(errors="replace")
    assert re.search(r"saved state of SITE-2 key .* not restored \(rule changed\)", log), log[-3000:]
    assert second.metric("eunomia_rules_state_dropped_total", 'reason="rule changed"') >= 1
