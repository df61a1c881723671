"""`eunomia up`: the whole pipeline on this host in one command.

Local Kafka unless --bootstrap is given, the topics, podman's Docker-compatible
API for container metadata, the producer and one worker per processor, and a
live view. Ctrl-C (or --duration) stops everything it started, Kafka included.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

from eunomia.commands.supervisor import Supervisor
from eunomia.config import Settings
from eunomia.endpoints import is_ready
from eunomia.errors import EunomiaError

__all__ = ["run_up"]

PRODUCER_METRICS_PORT = 9464
FIRST_WORKER_PORT = 9465


def _port(preferred: int) -> int:
    """The preferred port when free, else any free one: a second pipeline (or a
    test) on the same host must not make this one fail."""
    import socket

    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
                return s.getsockname()[1]
            except OSError:
                continue
    raise EunomiaError("no free port for the health endpoints")


def run_up(settings: Settings, *, bootstrap: str | None, workers: list[str], producer: bool,
           duration: float | None, live: bool, run_dir: Path, ready_file: Path | None = None) -> int:
    console = Console(stderr=not live)
    stop = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    kafka = None
    sup = Supervisor(run_dir / "logs")
    view = None
    try:
        if bootstrap is None:
            from eunomia.kafka.local_broker import LocalKafka

            lk = settings.local_kafka
            kafka = LocalKafka(lk.data_dir, lk.cache_dir, port=lk.port, version=lk.version, heap=lk.heap)
            if kafka.status()[0].running:
                kafka = None  # someone else's broker: use it, leave it running
                bootstrap = f"127.0.0.1:{lk.port}"
            else:
                console.print(f"starting local Kafka on 127.0.0.1:{lk.port}")
                kafka.start()
                bootstrap = kafka.bootstrap
        settings = settings.model_copy(update={
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": bootstrap})})
        from eunomia.kafka.topics import create_topics, warm_up_group_coordinator

        create_topics(settings)
        warm_up_group_coordinator(settings)
        env = {"EUNOMIA_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
               "EUNOMIA_TOPICS__PREFIX": settings.topics.prefix}
        ports: dict[str, int] = {}
        if producer:
            docker_host = os.environ.get("DOCKER_HOST")
            if not docker_host and shutil.which("podman"):
                sock = run_dir / "podman.sock"
                sock.unlink(missing_ok=True)
                sup.spawn_command("podman-api", ["podman", "system", "service", "--time=0",
                                                 f"unix://{sock}"], {})
                docker_host = f"unix://{sock}"
                for _ in range(100):
                    if sock.exists():
                        break
                    time.sleep(0.1)
            pport = _port(PRODUCER_METRICS_PORT)
            penv = {**env, "EUNOMIA_METRICS_PORT": str(pport)}
            if docker_host:
                penv["DOCKER_HOST"] = docker_host
            sup.spawn("producer", ["producer"], penv)
            ports["producer"] = pport
        for i, worker in enumerate(workers):
            # one at a time: faust workers started together on a new broker were
            # seen to wait minutes for their groups; one by one each is ready in seconds
            port = _port(FIRST_WORKER_PORT + i)
            for attempt in range(1, 4):
                child = sup.spawn(f"worker-{worker}", ["worker", worker],
                                  {**env, "EUNOMIA_METRICS_PORT": str(port)})
                try:
                    _wait_ready({worker: port}, sup, stop, console, timeout=60.0)
                    break
                except EunomiaError:
                    # a guard: workers stalled at start-up ~1 in 10 until /readyz
                    # stopped touching faust's services from its own thread
                    if attempt == 3 or stop.is_set():
                        raise
                    console.print(f"  {worker} not ready after 60 s: restarting it")
                    sup.discard(child)
            ports[worker] = port
        console.print(f"started {', '.join(ports)}; logs in {sup.log_dir}")
        from eunomia.commands.live_view import LiveView

        view = LiveView(settings, on_alert=None if live else _print_alert(console)).start()
        _wait_ready({k: v for k, v in ports.items() if k == "producer"}, sup, stop, console)
        if ready_file is not None:
            ready_file.write_text("ready\n")
        deadline = time.monotonic() + duration if duration else None
        if live:
            with Live(view.render(), console=console, refresh_per_second=2) as screen:
                while not _should_stop(stop, deadline, sup, console):
                    screen.update(view.render())
                    time.sleep(0.5)
        else:
            while not _should_stop(stop, deadline, sup, console):
                time.sleep(0.5)
        return 0 if not sup.failed() else 1
    finally:
        console.print("stopping ...")
        if view is not None:
            view.stop()
        sup.stop()
        if kafka is not None:
            kafka.stop()
        console.print("stopped: no process left behind")


def _print_alert(console: Console):
    def show(a: dict) -> None:
        console.print(f"[bold red]ALERT[/] {a['level']:<7} {a['rule_id']:<28} "
                      f"{a.get('container_name') or a.get('container_id') or '-'}: {a['message']}",
                      highlight=False, soft_wrap=True)
    return show


def _wait_ready(ports: dict[str, int], sup: Supervisor, stop: threading.Event, console: Console,
                timeout: float = 300.0) -> None:
    pending = dict(ports)
    deadline = time.monotonic() + timeout
    with console.status("waiting for the producer and workers to be ready") as status:
        while pending and not stop.is_set():
            for name, port in list(pending.items()):
                if is_ready(port):
                    console.print(f"  {name} ready")
                    del pending[name]
            for child in sup.failed():
                raise EunomiaError(f"{child.name} exited during start-up: "
                                   f"{sup.log_tail(child, 3).strip()}")
            if time.monotonic() > deadline:
                raise EunomiaError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
            status.update(f"waiting for {', '.join(pending)}")
            time.sleep(0.5)


def _should_stop(stop: threading.Event, deadline: float | None, sup: Supervisor,
                 console: Console) -> bool:
    if stop.is_set():
        return True
    if deadline is not None and time.monotonic() > deadline:
        return True
    for child in sup.failed():
        console.print(f"[red]{child.name} exited ({child.proc.returncode if child.proc else '?'}):[/]\n"
                      f"{sup.log_tail(child)}")
        return True
    return False
