"""The eBPF producer under an event storm, and what it costs the workloads it
watches, each figure against a baseline from the same run: events/s published
on one core against bare confluent-kafka produce, workload slowdown with and
without the producer (dd, a C build), and peak RSS against a bare producer.
Needs root, a C compiler and two cores; starts a local broker unless --bootstrap.

    .venv/bin/python bench/producer.py [--quick] [--json FILE]
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Figure, bench_args, report  # noqa: E402
from eunomia.config import KafkaSettings, Settings, TopicSettings  # noqa: E402
from eunomia.endpoints import wait_ready  # noqa: E402

STORM_CPU, PRODUCER_CPU = 0, 1

STORM = r"""
import os, sys
execs, opens = int(sys.argv[1]), int(sys.argv[2])
for _ in range(execs):
    pid = os.posix_spawn("/bin/true", ["true"], {})
    os.waitpid(pid, 0)
for _ in range(opens):
    os.close(os.open("/etc/shadow", os.O_RDONLY))
"""


def _settings(bootstrap: str, prefix: str) -> Settings:
    return Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap),
                    topics=TopicSettings(prefix=prefix, partitions=3))


# -- the producer process ------------------------------------------------------
class ProducerProc:
    def __init__(self, settings: Settings, work: Path) -> None:
        from tests.support.ports import free_port_block

        self.port = free_port_block()
        env = {**os.environ, "EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
               "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix, "EUNOMIA_METRICS_PORT": str(self.port),
               "EUNOMIA_PRODUCER__SPOOL_DIR": str(work / f"spool-{uuid.uuid4().hex[:6]}"),
               "EUNOMIA_PRODUCER__CONTAINERS": "false", "EUNOMIA_PRODUCER__PROC_SNAPSHOT": "false"}
        self.log = open(work / "producer.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["taskset", "-c", str(PRODUCER_CPU), sys.executable, "-m",
                                      "eunomia", "producer"], env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        if wait_ready(self.port, timeout=180, alive=lambda: self.proc.poll() is None):
            return
        if self.proc.poll() is not None:
            raise SystemExit(f"producer exited ({self.proc.returncode}); see {work}/producer.log")
        raise SystemExit("producer not ready within 180 s")

    def metric_sum(self, name: str, labels: str = "") -> float:
        """Sum of a counter's series whose labels match the regex ``labels``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(v) for lab, v in re.findall(rf"^{name}(?:{{([^}}]*)}})? (\S+)$", text, re.M)
                   if re.search(labels, lab or ""))

    def rss_mb(self, field: str = "VmHWM") -> float:
        """VmHWM: the peak, which includes bcc compiling the probes with
        clang in-process at start; VmRSS: what it holds now."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- Kafka side ----------------------------------------------------------------
def end_offsets(settings: Settings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka.librdkafka(), "group.id": "bench-offsets"})
    name = settings.topic(topic)
    parts = c.list_topics(name, timeout=10).topics[name].partitions
    total = sum(c.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in parts)
    c.close()
    return total


def mean_value_size(settings: Settings, n: int = 5000) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({**settings.kafka.librdkafka(), "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                  "enable.auto.commit": False})
    name = settings.topic("raw.events")
    parts = c.list_topics(name, timeout=10).topics[name].partitions
    c.assign([TopicPartition(name, p, 0) for p in parts])
    sizes: list[int] = []
    deadline = time.monotonic() + 30
    while len(sizes) < n and time.monotonic() < deadline:
        sizes += [len(m.value()) for m in c.consume(1000, 1.0) if not m.error() and m.value()]
    c.close()
    return sum(sizes) / len(sizes) if sizes else 300.0


def bare_produce_rate(settings: Settings, n: int, size: int) -> tuple[float, float]:
    """Messages/s of a bare confluent-kafka producer with the Publisher's
    settings, on the producer's core, in a child process (for its RSS)."""
    code = f"""
import json, os, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from confluent_kafka import Producer
from bench.producer import _settings
s = _settings({settings.kafka.bootstrap_servers!r}, {settings.topics.prefix!r})
p = Producer({{**s.kafka.librdkafka(), "enable.idempotence": True, "acks": "all",
              "compression.type": "lz4", "linger.ms": 20, "batch.size": 1_000_000,
              "batch.num.messages": 10_000, "queue.buffering.max.messages": 200_000,
              "queue.buffering.max.kbytes": 64 * 1024}})
topic, key, value = s.topic("bench.bare"), b"host-bench", os.urandom({size} // 2).hex().encode()[:{size}]
t0 = time.perf_counter()
for _ in range({n}):
    while True:
        try:
            p.produce(topic, value, key)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)
left = p.flush(120)
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"rate": ({n} - left) / dt, "rss": rss}}))
"""
    out = subprocess.run(["taskset", "-c", str(PRODUCER_CPU), sys.executable, "-c", code],
                         check=True, capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    return res["rate"], res["rss"]


# -- workloads -----------------------------------------------------------------
def make_tree(work: Path, files: int) -> Path:
    """A small C project (``files`` units and a Makefile) packed as .tar.xz."""
    src = work / "tree-src"
    src.mkdir()
    for i in range(files):
        body = "\n".join(f"int f{i}_{j}(int x) {{ int s = 0; for (int k = 0; k < x; k++) "
                         f"s += (k * {j + 1}) ^ (s >> 3); return s + {i}; }}" for j in range(40))
        (src / f"u{i}.c").write_text(f"#include <stdio.h>\n{body}\n")
    calls = " + ".join(f"f{i}_0(argc)" for i in range(files))
    decls = "\n".join(f"int f{i}_0(int);" for i in range(files))
    (src / "main.c").write_text(f"#include <stdio.h>\n{decls}\nint main(int argc, char **argv) "
                                f"{{ printf(\"%d\\n\", {calls}); return 0; }}\n")
    objs = " ".join(f"u{i}.o" for i in range(files)) + " main.o"
    (src / "Makefile").write_text(f"app: {objs}\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) -O1 -c -o $@ $<\n")
    archive = work / "tree.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(src, arcname="tree")
    shutil.rmtree(src)
    return archive


def workloads(work: Path, quick: bool) -> dict[str, list[str]]:
    count = 200_000 if quick else 1_000_000
    out = {"syscall-heavy (dd bs=1)": ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", f"count={count}"]}
    if shutil.which("cc") and shutil.which("make"):
        archive = make_tree(work, 12 if quick else 30)
        build = work / "build"
        out["realistic (untar + make)"] = ["sh", "-c", f"rm -rf {build} && mkdir {build} && "
                                           f"tar xJf {archive} -C {build} && make -s -C {build}/tree -j1"]
    else:
        print("no C compiler or make: the realistic workload is not measured", file=sys.stderr)
    return out


def time_runs(cmd: list[str], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(["taskset", "-c", str(STORM_CPU), *cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - t0)
    return best


# -- the run -------------------------------------------------------------------
def storm(settings: Settings, producer: ProducerProc, execs: int, opens: int) -> dict[str, float]:
    """Events published per second from the storm's start until raw.events
    stops growing, and the producer's drops meanwhile."""
    # the storm's own kinds: the syscall-count map filling up is another matter
    storm_drops = r'cause="(ringbuf:(exec|fork|exit|open)|spool_full|encode|decode)"'
    drops0 = producer.metric_sum("eunomia_producer_drops_total", storm_drops)
    base = end_offsets(settings, "raw.events")
    t0 = end_t = time.perf_counter()
    gen = subprocess.Popen(["taskset", "-c", str(STORM_CPU), sys.executable, "-c", STORM,
                            str(execs), str(opens)])
    # the producer sees the whole host: after the storm, a trickle of other
    # events goes on, so "drained" means growth below 1k events/s for 2 s
    last, last_t, quiet_since = base, t0, None
    while time.perf_counter() - t0 < 600:
        time.sleep(0.25)
        now, t = end_offsets(settings, "raw.events"), time.perf_counter()
        busy = (now - last) / (t - last_t) > 1000 if t > last_t else True
        if busy or gen.poll() is None:
            quiet_since = None
        else:
            quiet_since = quiet_since or last_t
            if t - quiet_since > 2:
                break
        if busy:
            end_t = t
        last, last_t = now, t
    published = last - base
    gen.wait()
    gen_s = end_t - t0
    time.sleep(2.5)  # drop counters reach /metrics once per interval
    drops = producer.metric_sum("eunomia_producer_drops_total", storm_drops) - drops0
    return {"published": published, "rate": published / gen_s if gen_s > 0 else 0.0, "drops": drops,
            "expected": execs * 3 + opens}


def run(bootstrap: str, work: Path, quick: bool) -> list[Figure]:
    from eunomia.kafka.topics import create_topics

    settings = _settings(bootstrap, f"bench{uuid.uuid4().hex[:6]}.")
    create_topics(settings)
    execs, opens = (2_000, 100_000) if quick else (10_000, 600_000)
    runs = 2 if quick else 3
    loads = workloads(work, quick)
    without = {name: time_runs(cmd, runs) for name, cmd in loads.items()}

    producer = ProducerProc(settings, work)
    try:
        s = storm(settings, producer, execs, opens)
        attached = {name: time_runs(cmd, runs) for name, cmd in loads.items()}
        rss, rss_now = producer.rss_mb("VmHWM"), producer.rss_mb("VmRSS")
    finally:
        producer.stop()
    # the machine may have drifted while the producer ran: take the best "without" of both sides
    for name, cmd in loads.items():
        without[name] = min(without[name], time_runs(cmd, 1))

    size = mean_value_size(settings)
    bare, bare_rss = bare_produce_rate(settings, int(s["published"]), int(size))
    print(f"storm: {execs:,} execs + {opens:,} opens -> {s['published']:,.0f} events published "
          f"(~{s['expected']:,} from the storm, the rest from the host), {s['drops']:,.0f} drops, "
          f"mean value {size:.0f} B")
    figures = [
        Figure("producer", f"storm published ({s['drops']:.0f} drops)", s["rate"], bare,
               "bare confluent-kafka produce, same count and size", goal=">= 100k/s, 0 drops, 1 core"),
        Figure("producer", "peak RSS (incl. bcc compile)", rss, bare_rss,
               "bare confluent-kafka producer process", unit="MB", goal="<= 150 MB",
               higher_is_better=False),
        Figure("producer", "RSS after the storm", rss_now, bare_rss,
               "bare confluent-kafka producer process", unit="MB", goal="<= 150 MB",
               higher_is_better=False),
    ]
    for name in loads:
        figures.append(Figure("producer", f"slowdown {name}", attached[name], without[name],
                              "same workload, no producer", unit="s",
                              goal="<= 1.05" if name.startswith("realistic") else "",
                              higher_is_better=False))
    return figures


def main() -> None:
    p = bench_args(__doc__.splitlines()[0])
    p.add_argument("--bootstrap")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/producer.py loads eBPF probes: run it as root")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("bench/producer.py pins the producer and the load to two different cores")
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp:
        work = Path(tmp)
        kafka = None
        bootstrap = args.bootstrap
        if not bootstrap:
            from eunomia.config import LocalKafkaSettings
            from eunomia.kafka.local_broker import LocalKafka
            from tests.support.ports import free_port_block

            s = LocalKafkaSettings()
            kafka = LocalKafka(work / "kafka", s.cache_dir, port=free_port_block(), heap="512m")
            kafka.start()
            bootstrap = kafka.bootstrap
        try:
            figures = run(bootstrap, work, args.quick)
        finally:
            if kafka is not None:
                kafka.stop()
    report(figures, args.json)
    print(f"bench process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
