"""Event time across a fleet, end to end: simulated hosts publish raw events and
heartbeats through real ``Publisher``s, real enrich and rules workers raise the
alerts, and each case compares them with an offline replay of a recording of the
same raw topics. Host B reaches the broker through a TCP proxy on a listener of
its own, so its link alone can be cut while host A keeps publishing.
"""

from __future__ import annotations

import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eunomia.config import KafkaSettings, LocalKafkaSettings, Settings, TopicSettings
from eunomia.errors import LocalKafkaError
from eunomia.kafka.local_broker import CONTROLLER_OFFSET, LocalKafka
from eunomia.kafka.topics import create_topics
from eunomia.processors.replay.offline import replay_offline
from eunomia.processors.replay.record import record
from eunomia.processors.rules import load_files, pack_files
from eunomia.processors.rules.fleet import LATE_RULE
from eunomia.producer.publisher import Publisher
from eunomia.schemas.kinds import HEARTBEAT
from tests.requirements import require
from tests.support import kafka_io
from tests.support.kafka_io import CODEC
from tests.support.ports import free_port_block
from tests.support.raw_records import (
    NS,
    connect_payload,
    container_record,
    exec_payload,
    open_payload,
    podman_path,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.wait import wait_for
from tests.support.workers import eunomia_env

pytestmark = pytest.mark.kafka

OUTAGE_S = 30.0
S = 10**9
YEAR_NS = 365 * 24 * 3600 * S
PARTITIONS = 2
STATEFUL = ("EUN-1010", "EUN-1014", "EUN-1015")  # sequence, distinct, threshold
PER_ROUND = (*STATEFUL, "EUN-1012")
LATE_METRIC = "eunomia_rules_late_events_total"


# -- the broker, host B's link and the workers ------------------------------------------------

@dataclass
class Pipeline:
    kafka: LocalKafka
    settings: Settings  # host A and the workers: the broker's own listener
    settings_b: Settings  # host B: through the proxy
    proxy: TcpProxy
    metrics_port: int  # the rules worker's
    workdir: Path
    procs: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]
    supervised: bool = False  # restart an exited worker, as its supervisor would
    restarts: list[str] = field(default_factory=list)

    def check_workers(self) -> None:
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                continue
            if not self.supervised:
                log = (self.workdir / f"{name}.log").read_text(errors="replace")
                pytest.fail(f"the {name} worker exited with {p.returncode}:\n{log[-4000:]}")
            self.restarts.append(f"{name} (exit {p.returncode})")
            self.procs[name] = _start_worker(self.settings, self.workdir, name, self.ports[name])

    def ready(self) -> bool:
        self.check_workers()
        return all(_ready(port) for port in self.ports.values())

    def metric(self, name: str, *labels: str) -> float:
        """The rules worker's metric summed over the series whose labels hold every
        one of ``labels`` (``'host="h"'``; prometheus-client sorts them by name)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        pat = rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$"
        return sum(float(m.group(2)) for m in re.finditer(pat, text, re.M)
                   if all(lb in (m.group(1) or "") for lb in labels))


def _broker(tmp: Path) -> tuple[LocalKafka, int, int]:
    """A broker with a second listener (HOSTB) for host B's proxied link."""
    s = LocalKafkaSettings()
    for attempt in range(2):  # a free port can be taken by a parallel test before Kafka binds it
        b, q, p = free_port_block(), free_port_block(), free_port_block()
        extra = {"listeners": f"PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{b + CONTROLLER_OFFSET},"
                              f"HOSTB://127.0.0.1:{q}",
                 "advertised.listeners": f"PLAINTEXT://127.0.0.1:{b},HOSTB://127.0.0.1:{p}",
                 "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                                   "HOSTB:PLAINTEXT"}
        kafka = LocalKafka(tmp / f"kafka{attempt}", s.cache_dir, port=b, heap="256m",
                           extra_properties=extra)
        try:
            kafka.start()
            return kafka, q, p
        except LocalKafkaError:
            kafka.stop()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _start_worker(settings: Settings, workdir: Path, name: str, metrics_port: int) -> subprocess.Popen[bytes]:
    env = {**eunomia_env(settings), "EUNOMIA_METRICS_PORT": str(metrics_port)}
    with (workdir / f"{name}.log").open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "eunomia", "worker", name], env=env, cwd=workdir,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    require(shutil.which("java") is not None, "needs Java 17 for the local Kafka broker")
    tmp = tmp_path_factory.mktemp("fleet")
    kafka, q, p = _broker(tmp)
    proxy = TcpProxy(p, q).start()
    topics = TopicSettings(prefix=f"ft{uuid.uuid4().hex[:6]}.", partitions=PARTITIONS)
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap), topics=topics)
    settings_b = Settings(kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{p}"), topics=topics)
    workdir = tmp / "workers"
    workdir.mkdir()
    ports = {"enrich": free_port_block(), "rules": free_port_block()}
    pipe = Pipeline(kafka, settings, settings_b, proxy, ports["rules"], workdir, {}, ports)
    try:
        create_topics(settings)
        pipe.procs.update({n: _start_worker(settings, workdir, n, port) for n, port in ports.items()})
        wait_for(pipe.ready, "the enrich and rules workers to be ready", timeout=180)
        yield pipe
    finally:
        for proc in pipe.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        proxy.cut()
        kafka.stop()


# -- simulated hosts ------------------------------------------------------------------------

class SimHost:
    """One producer host in a thread of its own (a Publisher belongs to one thread):
    an attack round every ``every_s`` seconds, a heartbeat each second, and any
    extra records a test queues with ``inject``."""

    def __init__(self, name: str, settings: Settings, spool: Path, *, skew_ns: int = 0,
                 every_s: float = 3.0) -> None:
        self.host_id, self.boot_id = f"{name}-{uuid.uuid4().hex[:6]}", "boot-1"
        self.skew_ns, self.every_s = skew_ns, every_s
        self.pub = Publisher(settings, spool_dir=spool, spool_max_bytes=64 << 20, stall_seconds=3)
        self.seq = 0
        self.rounds = 0
        self.attacking = threading.Event()
        self.attacking.set()
        self.stopped = threading.Event()
        self.max_spooled = 0
        self.errors: list[BaseException] = []
        self.injected: queue.Queue[Callable[[SimHost], None]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SimHost:
        self.thread.start()
        return self

    def now(self) -> int:
        return time.time_ns() + self.skew_ns

    def raw(self, kind: str, *, pid: int = 0, cg: int = 0, payload: dict[str, Any] | None = None,
            comm: str = "sh", ts: int | None = None) -> dict[str, Any]:
        return {"host_id": self.host_id, "boot_id": self.boot_id, "seq": 0,
                "ts_ns": self.now() if ts is None else ts, "kind": kind, "pid": pid, "tid": pid,
                "ppid": 1 if pid else 0, "uid": 0, "gid": 0, "comm": comm, "cgroup_id": cg,
                "cgroup_path": podman_path(self.cid(cg)) if cg else None,
                "ns": dict(NS) if pid else dict.fromkeys(NS, 0),
                "exec_id": f"{self.host_id}:{self.boot_id}:{pid}:1" if pid else "",
                "parent_exec_id": f"{self.host_id}:{self.boot_id}:1:1" if pid else "",
                "payload": payload}

    def send(self, rec: dict[str, Any]) -> None:
        self.seq += 1  # one counter for events and heartbeats, as producer/agent.py numbers them
        rec["seq"] = self.seq
        self.pub.publish("raw.events", self.host_id.encode(), CODEC.encode("raw_event", rec), seq=self.seq)

    def cid(self, cg: int) -> str:
        return f"{self.host_id[-6:]}{cg:058d}"

    def container(self, cg: int) -> None:
        rec = {**container_record(self.host_id, cg, self.cid(cg), name=f"web-{cg}"), "ts_ns": self.now()}
        self.pub.publish("containers", f"{self.host_id}/{cg}".encode(), CODEC.encode("container", rec))

    def attack(self) -> None:
        """One round in a new container: every rule of PER_ROUND fires once for it."""
        self.rounds += 1
        cg = 7000 + self.rounds
        pid = 100 + self.rounds
        self.container(cg)
        self.send(self.raw("exec", pid=pid, cg=cg, payload=exec_payload("/bin/sh", "sh")))
        for port in range(2000, 2020):
            self.send(self.raw("connect", pid=pid, cg=cg, payload=connect_payload("10.9.9.9", port)))
        for _ in range(5):
            self.send(self.raw("open", pid=pid, cg=cg, payload=open_payload("/etc/shadow", retval=-13)))
        self.send(self.raw("open", pid=pid, cg=cg, payload=open_payload("/var/run/docker.sock")))
        self.send(self.raw("memfd_create", pid=pid + 1000, cg=cg,
                           payload={"args": [], "str_arg": "x", "retval": 3}))
        self.send(self.raw("exec", pid=pid + 1000, cg=cg, comm="x",
                           payload=exec_payload("/memfd:x (deleted)", "x")))
        # the shell exits: no window stays open for minutes (EUN-3003 waits 10 min for this)
        self.send(self.raw("exit", pid=pid, cg=cg, payload={"exit_code": 0, "signal": 0}))

    def heartbeat(self) -> None:
        self.send(self.raw(HEARTBEAT))

    def inject(self, fn: Callable[[SimHost], None]) -> None:
        self.injected.put(fn)

    def _run(self) -> None:
        try:
            next_beat = next_attack = time.monotonic()
            while not self.stopped.is_set():
                now = time.monotonic()
                while not self.injected.empty():
                    self.injected.get()(self)
                if self.attacking.is_set() and now >= next_attack:
                    next_attack = now + self.every_s
                    self.attack()
                if now >= next_beat:
                    next_beat = now + 1.0
                    self.heartbeat()
                self.pub.poll(0.05)
                self.max_spooled = max(self.max_spooled, self.pub.stats()["spool_messages"])
            self.pub.flush(30)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)
        finally:
            self.pub.close(5)

    def stop_attacks(self) -> None:
        self.attacking.clear()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(60)
        assert not self.errors, self.errors

    def delivered_all(self) -> bool:
        """Nothing waits in the spool or in librdkafka (read from another thread:
        a snapshot, good enough to wait on)."""
        st = self.pub.stats()
        return not self.errors and st["spool_messages"] == 0 and self.pub.delivered >= self.seq


@pytest.fixture
def hosts() -> Iterator[list[SimHost]]:
    started: list[SimHost] = []
    yield started
    for h in started:
        h.stopped.set()
    for h in started:
        h.thread.join(60)


# -- live versus offline --------------------------------------------------------------------

def offline_alerts(pipe: Pipeline, tmp: Path, host_ids: set[str]) -> tuple[list[dict[str, Any]], Any]:
    """The alerts an offline replay of a recording of the raw topics raises for ``host_ids``."""
    out = tmp / f"rec-{time.monotonic_ns()}.eunrec"
    record(pipe.settings, ["raw.events", "containers"], out, from_beginning=True, to_end=True)
    res = replay_offline(out, load_files(list(pack_files())))
    return [a for a in res.alerts if a["host_id"] in host_ids], res


def live_alerts(pipe: Pipeline, host_ids: set[str], want: set[str]) -> list[dict[str, Any]]:
    """The alerts topic's alerts of ``host_ids`` once every id of ``want`` is there,
    read again after a quiet moment so extra and duplicate alerts show too."""
    def mine(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in got if a.get("host_id") in host_ids]

    def complete(got: list[dict[str, Any]]) -> bool:
        pipe.check_workers()
        return want <= {a["alert_id"] for a in mine(got)}

    got = kafka_io.read_topic(pipe.settings, "alerts", "alert", until=complete, timeout=150)
    if not complete(got):
        have = {a["alert_id"]: a for a in mine(got)}
        missing = sorted(want - set(have))
        pytest.fail(f"{len(missing)} of {len(want)} alerts missing live: {missing[:20]}; "
                    f"live had {sorted((a['rule_id'], a['alert_id']) for a in have.values())[:40]}")
    time.sleep(3)  # the worker has handled every batch before the last wanted alert; let any extra land
    n = len(got)
    return mine(kafka_io.read_topic(pipe.settings, "alerts", "alert", until=lambda v: len(v) >= n,
                                    timeout=60))


def check_live_equals_offline(pipe: Pipeline, tmp: Path, hs: list[SimHost], *,
                              late_hosts: set[str] = frozenset()) -> tuple[list[dict[str, Any]], Any]:
    """Wait for the hosts' traffic to be delivered and evaluated, then: every round's
    alerts were raised offline, live equals offline, no duplicate, no late event
    outside ``late_hosts``. Returns the live alerts and the offline result."""
    wait_for(lambda: all(h.delivered_all() for h in hs), "the hosts' publishers to deliver everything",
             timeout=120)
    ids = {h.host_id for h in hs}
    time.sleep(3)  # heartbeats after the last attack move each host's time past its windows
    expected, res = offline_alerts(pipe, tmp, ids)
    exp_ids = Counter(a["alert_id"] for a in expected)
    assert max(exp_ids.values(), default=1) == 1, "offline replay repeated an alert id"
    by_host_rule = Counter((a["host_id"], a["rule_id"]) for a in expected)
    for h in hs:
        for rule in PER_ROUND:
            assert by_host_rule[(h.host_id, rule)] == h.rounds, (
                f"offline: host {h.host_id} rule {rule}: {by_host_rule[(h.host_id, rule)]} alerts for "
                f"{h.rounds} attack rounds")
    live = live_alerts(pipe, ids, set(exp_ids))
    live_ids = Counter(a["alert_id"] for a in live)
    problems = []
    dups = sorted({(a["rule_id"], a["host_id"], a["alert_id"]) for a in live if live_ids[a["alert_id"]] > 1})
    if dups:
        problems.append(f"{len(dups)} alerts twice or more on the topic: {dups}")
    extra = sorted((a["rule_id"], a["host_id"], a["alert_id"]) for a in live if a["alert_id"] not in exp_ids)
    if extra:
        problems.append(f"live alerts an offline replay does not raise: {extra}")
    for h in hs:
        if h.host_id in late_hosts:
            continue
        if [a for a in live if a["rule_id"] == LATE_RULE and a["host_id"] == h.host_id]:
            problems.append(f"a late-events alert for {h.host_id}")
        if (n := pipe.metric(LATE_METRIC, f'host="{h.host_id}"')) != 0:
            problems.append(f"{n:.0f} late events of {h.host_id} counted")
    if problems:  # where a repeat came from: enrich emitting an event twice, or rules reading it twice
        enriched = kafka_io.consume(pipe.settings, "enriched.events", until=lambda got: False, timeout=10)
        seen = Counter(v["event"]["id"] for _, v, _, _ in enriched
                       if v["host"]["id"] in ids and v["event"]["kind"] != HEARTBEAT)
        twice = sorted(i for i, n in seen.items() if n > 1)
        problems.append(f"(enriched.events holds {len(twice)} of these hosts' {len(seen)} events more than "
                        f"once: {twice[:10]})")
    if pipe.restarts:
        problems.append(f"(workers restarted after exiting: {pipe.restarts})")
    assert not problems or problems[0].startswith("(workers"), "; ".join(problems)
    assert set(live_ids) == set(exp_ids)
    print(f"{len(live)} alerts live = offline for {sorted(ids)} "
          f"({sorted(Counter(a['rule_id'] for a in live).items())}); rounds "
          f"{[(h.host_id, h.rounds, h.max_spooled) for h in hs]}")
    return live, res


# -- the tests ------------------------------------------------------------------------------

def test_one_hosts_link_down_30s_other_keeps_publishing(pipeline: Pipeline, tmp_path: Path,
                                                        hosts: list[SimHost]) -> None:
    a = SimHost("a", pipeline.settings, tmp_path / "spool-a").start()
    b = SimHost("b", pipeline.settings_b, tmp_path / "spool-b").start()
    hosts += [a, b]
    time.sleep(5)
    pipeline.proxy.cut()
    time.sleep(OUTAGE_S)
    spooled = b.max_spooled
    pipeline.proxy.restore()
    time.sleep(6)
    a.stop_attacks()
    b.stop_attacks()
    assert spooled > 0, "host B's publisher never spooled: its link was not cut"
    assert a.max_spooled == 0, "host A spooled: the broker itself was away"
    check_live_equals_offline(pipeline, tmp_path, [a, b])
    assert b.rounds >= OUTAGE_S / b.every_s  # attacks went on during the cut


def test_clock_ahead_and_far_future_event_leave_other_hosts_alerts(pipeline: Pipeline, tmp_path: Path,
                                                                   hosts: list[SimHost]) -> None:
    a = SimHost("a3", pipeline.settings, tmp_path / "spool-a").start()
    d = SimHost("ahead", pipeline.settings, tmp_path / "spool-d", skew_ns=30 * S).start()
    c = SimHost("c", pipeline.settings, tmp_path / "spool-c").start()
    hosts += [a, d, c]
    far: dict[str, Any] = {}

    def far_future(h: SimHost) -> None:  # a port scan step a century ahead, in a known container
        rec = h.raw("connect", pid=101, cg=7001, payload=connect_payload("10.9.9.9", 9999),
                    ts=h.now() + 100 * YEAR_NS)
        h.send(rec)
        far.update(rec)

    time.sleep(5)
    c.inject(far_future)
    time.sleep(8)
    for h in (a, d, c):
        h.stop_attacks()
    live, res = check_live_equals_offline(pipeline, tmp_path, [a, d, c])
    assert res.messages["refused"] == 1, res.messages
    # live, the rules worker dead-lettered it, with the reason in the headers
    far_id = f"{c.host_id}:{c.boot_id}:e{far['seq']}"

    def dead(got: list[Any]) -> list[Any]:
        return [m for m in got
                if CODEC.decode(m[1]["value"], expect="enriched_event")["event"]["id"] == far_id]

    letters = kafka_io.consume(pipeline.settings, "dlq", until=lambda got: bool(dead(got)), timeout=60,
                               decode="dead_letter")
    assert len(dead(letters)) == 1, f"the event 100 years ahead was not dead-lettered once: {len(letters)}"
    _, _, headers, _ = dead(letters)[0]
    hdr = {k: v.decode() for k, v in headers}
    assert hdr["eunomia-error-type"] == "EventTimeError" and hdr["eunomia-processor"] == "rules", hdr
    assert "ahead of host" in hdr["eunomia-error"], hdr
    # it sat on a partition of enriched.events that carries the other hosts' attacks
    partition = int(hdr["eunomia-source"].split("/")[-2])
    want = Counter({a.host_id: 20 * a.rounds, d.host_id: 20 * d.rounds})

    def connects(got: list[Any]) -> Counter[str]:
        return Counter(v["host"]["id"] for _, v, _, _ in got
                       if v["event"]["kind"] == "connect" and v["host"]["id"] in want)

    others = kafka_io.consume(pipeline.settings, "enriched.events", timeout=60,
                              until=lambda got: connects(got) == want)
    assert connects(others) == want
    sharing = {v["host"]["id"] for _, v, _, p in others
               if p == partition and v["event"]["kind"] == "connect" and v["host"]["id"] != c.host_id}
    assert sharing & {a.host_id, d.host_id}, f"no other host's attack on partition {partition}"
    print(f"dead letter: {hdr['eunomia-error']}; partition {partition} shared with {sorted(sharing)}; "
          f"{len(live)} alerts")


def test_late_events_counted_and_alerted(pipeline: Pipeline, tmp_path: Path, hosts: list[SimHost]) -> None:
    h = SimHost("late", pipeline.settings, tmp_path / "spool-l").start()
    hosts.append(h)
    late: dict[str, Any] = {}

    def behind(host: SimHost) -> None:  # a port scan step of two minutes ago, past every lateness
        rec = host.raw("connect", pid=101, cg=7001, payload=connect_payload("10.9.9.9", 9998),
                       ts=host.now() - 120 * S)
        host.send(rec)
        late.update(rec)

    time.sleep(7)
    h.stop_attacks()
    time.sleep(1)
    h.inject(behind)
    live, res = check_live_equals_offline(pipeline, tmp_path, [h], late_hosts={h.host_id})
    assert res.late >= 1
    late_id = f"{h.host_id}:{h.boot_id}:e{late['seq']}"
    alerts = [a for a in live if a["rule_id"] == LATE_RULE]
    assert [a["events"][0]["id"] for a in alerts] == [late_id], alerts
    assert pipeline.metric(LATE_METRIC, 'rule="EUN-1014"', f'host="{h.host_id}"') >= 1
    print(f"late-events alert: {alerts[0]['message']}")
