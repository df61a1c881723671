"""End-to-end latency: a scripted container action's kernel event to its alert
appended on ``alerts``, under steady background load through producer, enrich
and rules; p50 and p99 over the actions, next to a bare three-hop Kafka relay
(produce -> consume -> produce -> consume -> produce -> consume, the hops the
pipeline makes) measured on the same broker in the same run. Also the peak RSS
of the producer and of each worker.

Needs root, BPF and podman. Goals: p50 <= 200 ms, p99 <= 1 s.

    .venv/bin/python bench/e2e_latency.py [--quick] [--actions N] [--load R] [--json FILE]
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

from bench._common import Figure, bench_args, report  # noqa: E402
from eunomia.commands.supervisor import Supervisor  # noqa: E402
from eunomia.config import KafkaSettings, LocalKafkaSettings, Settings, TopicSettings  # noqa: E402
from eunomia.kafka.local_broker import LocalKafka  # noqa: E402
from eunomia.kafka.topics import create_topics  # noqa: E402
from eunomia.schemas import AvroCodec  # noqa: E402
from tests.support.podman import BUSYBOX_IMAGE  # noqa: E402
from tests.support.ports import free_port_block  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def background_load(rate: int, stop: threading.Event, counter: list[int]) -> None:
    """Refused loopback connects from a host process: each one a kernel connect
    event through the whole pipeline that matches no rule."""
    per_tick = max(1, rate // 100)
    t0 = time.monotonic()
    n = 0
    while not stop.is_set():
        for _ in range(per_tick):
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", 1))
            except OSError:
                pass
            s.close()
        n += per_tick
        ahead = n / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    counter.append(n)


def relay_baseline(bootstrap: str, n: int) -> list[float]:
    """Three produce/consume hops with bare confluent-kafka, one message at a time."""
    topics = [f"relay-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    cons = []
    for t in topics:
        prod.produce(t, b"warm")
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"relay-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "latest", "fetch.wait.max.ms": 10})
        c.assign([TopicPartition(t, 0, -1)])
        cons.append(c)
    prod.flush(30)
    time.sleep(2)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        prod.produce(topics[0], b"x" * 600)
        prod.flush(10)
        for hop in range(3):
            msg = None
            while msg is None or msg.error():
                msg = cons[hop].poll(5)
            if hop < 2:
                prod.produce(topics[hop + 1], msg.value())
                prod.flush(10)
        out.append(time.perf_counter() - t0)
    for c in cons:
        c.close()
    return out


def main() -> None:
    p = bench_args(__doc__ or "")
    p.add_argument("--actions", type=int, default=200)
    p.add_argument("--load", type=int, default=5000, help="background events/s")
    args = p.parse_args()
    actions = 60 if args.quick else args.actions
    work = Path(tempfile.mkdtemp(prefix="e2e-lat-"))
    lk = LocalKafkaSettings()
    kafka = LocalKafka(work / "kafka", lk.cache_dir, port=free_port_block(), heap="512m")
    kafka.start()
    sup = Supervisor(work / "logs")
    stop = threading.Event()
    loaded: list[int] = []
    rss: dict[str, float] = {}
    podman_api: subprocess.Popen[bytes] | None = None
    try:
        settings = Settings(kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap),
                            topics=TopicSettings(prefix="lat.", partitions=3))
        create_topics(settings)
        from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

        # the broker stamps each alert when it is appended: that is the end of the latency
        admin = AdminClient(settings.kafka.librdkafka())
        res = ConfigResource(ConfigResource.Type.TOPIC, settings.topic("alerts"), incremental_configs=[
            ConfigEntry("message.timestamp.type", "LogAppendTime",
                        incremental_operation=AlterConfigOpType.SET)])
        admin.incremental_alter_configs([res])[res].result()
        baseline = relay_baseline(kafka.bootstrap, actions)
        # the container's name comes from the runtime API: podman's, on a private socket
        sock = work / "podman.sock"
        podman_api = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env = {"EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap, "EUNOMIA_TOPICS__PREFIX": "lat.",
               "EUNOMIA_TOPICS__PARTITIONS": "3", "EUNOMIA_PRODUCER__SPOOL_DIR": str(work / "spool"),
               "DOCKER_HOST": f"unix://{sock}"}
        import docker

        t_api = time.monotonic()
        while True:  # podman's service starts cold: wait until it answers
            try:
                docker.DockerClient(base_url=f"unix://{sock}", timeout=30).version()
                break
            except Exception:
                if time.monotonic() - t_api > 120:
                    raise
                time.sleep(0.5)
        ports = {}
        for name, argv in (("producer", ["producer"]), ("enrich", ["worker", "enrich"]),
                           ("rules", ["worker", "rules"])):
            ports[name] = free_port_block()
            sup.spawn(name, argv, {**env, "EUNOMIA_METRICS_PORT": str(ports[name])})
        from eunomia.endpoints import wait_ready

        deadline = time.monotonic() + 300
        for name, port in ports.items():
            if not wait_ready(port, timeout=max(0.0, deadline - time.monotonic()),
                              alive=lambda: not sup.failed()):
                raise RuntimeError(f"{name} not ready; logs in {sup.log_dir}")
        procs = {c.name: psutil.Process(c.proc.pid) for c in sup.children if c.proc}

        def sample() -> None:
            while not stop.is_set():
                for name, pr in procs.items():
                    try:
                        rss[name] = max(rss.get(name, 0.0), pr.memory_info().rss / 2**20)
                    except psutil.NoSuchProcess:
                        pass
                time.sleep(0.5)

        threading.Thread(target=sample, daemon=True).start()
        loader = threading.Thread(target=background_load, args=(args.load, stop, loaded))
        t_load = time.monotonic()
        loader.start()
        time.sleep(5)
        name = f"lat-{uuid.uuid4().hex[:6]}"
        script = f"sleep 2; i=0; while [ $i -lt {actions} ]; do cat /etc/shadow > /dev/null; " \
                 f"sleep 0.25; i=$((i+1)); done"
        cidfile = work / "cid"
        subprocess.run(["podman", "run", "--rm", "--name", name, "--cidfile", str(cidfile), BUSYBOX_IMAGE,
                        "sh", "-c", script], check=True, capture_output=True, timeout=600)
        cid = cidfile.read_text().strip()
        codec = AvroCodec()
        c = Consumer({**settings.kafka.librdkafka(), "group.id": f"lat-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "earliest"})
        c.subscribe([settings.topic("alerts")])
        lat: list[float] = []
        seen: dict[tuple[str, str | None], int] = {}
        deadline = time.monotonic() + 120
        while len(lat) < actions and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error():
                    continue
                a = codec.decode(m.value(), "alert")
                seen[(a["rule_id"], a.get("container_name"))] = seen.get(
                    (a["rule_id"], a.get("container_name")), 0) + 1
                # by id: the name needs the container's record, which may lag under load
                if a["rule_id"] == "EUN-1003" and a.get("container_id") == cid:
                    lat.append((m.timestamp()[1] * 1_000_000 - a["first_seen_ns"]) / 1e9)
        c.close()
        stop.set()
        loader.join()
        load_rate = loaded[0] / (time.monotonic() - t_load) if loaded else 0.0
        if not lat:
            raise RuntimeError(f"none of {actions} alerts arrived; seen {seen}")
        if len(lat) < actions:
            # the pipeline fell behind the load: say so, and report the alerts that came
            print(f"only {len(lat)} of {actions} alerts arrived within 120 s of the last action")
        print(f"{len(lat)} alerts; background load {load_rate:,.0f} connects/s; "
              f"latency p50 {pct(lat, 0.5) * 1000:.0f} ms p99 {pct(lat, 0.99) * 1000:.0f} ms; "
              f"relay baseline p50 {statistics.median(baseline) * 1000:.1f} ms")
        figures = [
            Figure("e2e", "latency p50 event->alert", pct(lat, 0.5) * 1000, pct(baseline, 0.5) * 1000,
                   "bare 3-hop Kafka relay p50", unit="ms", goal="p50 <= 200 ms", higher_is_better=False),
            Figure("e2e", "latency p99 event->alert", pct(lat, 0.99) * 1000, pct(baseline, 0.99) * 1000,
                   "bare 3-hop Kafka relay p99", unit="ms", goal="p99 <= 1000 ms", higher_is_better=False),
            Figure("e2e", "background load during the run", load_rate, args.load, "asked rate",
                   unit="events/s", goal=">= 5k events/s"),
            Figure("e2e", "alerts arrived within 120 s", len(lat), actions, "scripted actions",
                   unit="alerts", goal="all"),
        ]
        for name, mb in sorted(rss.items()):
            figures.append(Figure("e2e", f"peak RSS {name}", mb, 150.0, "150 MB budget", unit="MB",
                                  higher_is_better=False))
        report(figures, args.json)
    finally:
        stop.set()
        sup.stop()
        if podman_api is not None:
            podman_api.terminate()
            podman_api.wait(30)
        kafka.stop()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
