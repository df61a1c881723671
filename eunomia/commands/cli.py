"""The ``eunomia`` command. Each feature registers its own sub-command group
here; ``eunomia --help`` lists only what works.

Expected failures (``EunomiaError``) print one line and exit 1; only bugs keep
their traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from eunomia.config import load_settings
from eunomia.errors import EunomiaError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Eunomia Stream: container runtime security on Kafka.")
kafka_app = typer.Typer(no_args_is_help=True, help="The local Apache Kafka (KRaft) the project runs.")
topics_app = typer.Typer(no_args_is_help=True, help="The pipeline's topics.")
worker_app = typer.Typer(no_args_is_help=True, help="Run one stream processor (a faust worker).")
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")

console = Console()


def _local_kafka(port: int | None, brokers: int, secure: bool = False):
    from eunomia.kafka.local_broker import LocalKafka

    s = load_settings().local_kafka
    return LocalKafka(s.data_dir, s.cache_dir, port=port or s.port, brokers=brokers,
                      version=s.version, heap=s.heap, secure=secure)


PortOpt = typer.Option(None, "--port", help="first broker port (default from config: 9092)")
BrokersOpt = typer.Option(1, "--brokers", help="1, or 3 for a fault-test cluster")
SecureOpt = typer.Option(False, "--secure", help="SASL_SSL only, ACLs enforced, one SCRAM user per "
                         "role (a cluster of its own)")


@kafka_app.command("start")
def kafka_start(port: int | None = PortOpt, brokers: int = BrokersOpt, secure: bool = SecureOpt) -> None:
    """Fetch Kafka once, format KRaft storage, start and wait until it answers."""
    kafka = _local_kafka(port, brokers, secure)
    with console.status(f"starting Kafka {kafka.version} on {kafka.bootstrap}"):
        kafka.start()
    console.print(f"Kafka ready at [bold]{kafka.bootstrap}[/] (data in {kafka.data_dir})")
    if secure:
        clients = kafka.material.client_file("admin").parent
        console.print(f"SASL_SSL with ACLs; each role's settings (user, password, CA) in "
                      f"{clients}/<role>.yaml\ngrant the roles their ACLs: "
                      f"EUNOMIA_CONFIG={clients}/admin.yaml eunomia acls apply",
                      highlight=False, soft_wrap=True)


@kafka_app.command("stop")
def kafka_stop(port: int | None = PortOpt, brokers: int = BrokersOpt, secure: bool = SecureOpt) -> None:
    """Stop the local Kafka cleanly (SIGTERM, then SIGKILL after 30 s)."""
    kafka = _local_kafka(port, brokers, secure)
    kafka.stop()
    console.print(f"Kafka at {kafka.bootstrap} stopped")


@kafka_app.command("status")
def kafka_status(port: int | None = PortOpt, brokers: int = BrokersOpt, secure: bool = SecureOpt) -> None:
    """Show each local node; exit 1 when none runs."""
    kafka = _local_kafka(port, brokers, secure)
    table = Table("node", "port", "pid", "state")
    nodes = kafka.status()
    for n in nodes:
        table.add_row(str(n.node_id), str(n.port), str(n.pid or "-"),
                      "[green]running[/]" if n.running else "[red]stopped[/]")
    console.print(table)
    if not any(n.running for n in nodes):
        raise typer.Exit(1)


@topics_app.command("create")
def topics_create(timeout: float = typer.Option(30.0, help="seconds to wait for the brokers")) -> None:
    """Create the pipeline's topics (idempotent)."""
    from eunomia.kafka.topics import create_topics

    result = create_topics(load_settings(), timeout=timeout)
    table = Table("topic", "result")
    for name, state in result.items():
        table.add_row(name, state)
    console.print(table)


@topics_app.command("list")
def topics_list() -> None:
    """Show the topic layout with partitions and cleanup policy."""
    from eunomia.kafka.topics import topic_specs

    table = Table("topic", "partitions", "replication", "cleanup.policy")
    for nt in topic_specs(load_settings()):
        table.add_row(nt.topic, str(nt.num_partitions), str(nt.replication_factor),
                      nt.config["cleanup.policy"])
    console.print(table)


alerts_app = typer.Typer(no_args_is_help=True, help="Alerts on the alerts topic.")
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("tail")
def alerts_tail(follow: bool = typer.Option(False, "--follow", "-f", help="keep waiting for new alerts"),
                last: int = typer.Option(0, "--last", help="only the last N per partition (0: all)"),
                fmt: str = typer.Option("line", "--format", help="line or json")) -> None:
    """Print alerts from the topic; with --follow, keep printing new ones."""
    from eunomia.commands.alerts_tail import format_alert, tail_alerts

    out = Console(soft_wrap=True, highlight=False)
    try:
        for alert in tail_alerts(load_settings(), follow=follow, last=last or None):
            out.print(format_alert(alert, fmt), markup=False)
    except KeyboardInterrupt:
        pass


@app.command("up")
def up(bootstrap: str | None = typer.Option(None, "--bootstrap", help="use these brokers, not local Kafka"),
       workers: str = typer.Option("", "--workers", help="comma-separated; default: every worker"),
       no_producer: bool = typer.Option(False, "--no-producer", help="processors only"),
       duration: float | None = typer.Option(None, "--duration", help="stop after S seconds"),
       live: bool | None = typer.Option(None, "--live/--no-live", help="live view (default: on a tty)"),
       ready_file: str | None = typer.Option(None, "--ready-file", help="write this file once ready"),
       ) -> None:
    """Run the whole pipeline here: Kafka, topics, producer, workers, live view."""
    from pathlib import Path

    from eunomia.commands.up import run_up

    names = [w for w in workers.split(",") if w] or [c.name for c in worker_app.registered_commands
                                                      if c.name]
    settings = load_settings()
    run_dir = settings.local_kafka.data_dir.parent / "up"
    code = run_up(settings, bootstrap=bootstrap, workers=names, producer=not no_producer,
                  duration=duration, live=sys.stdout.isatty() if live is None else live,
                  run_dir=run_dir, ready_file=Path(ready_file) if ready_file else None)
    raise typer.Exit(code)


@app.command("demo")
def demo() -> None:
    """The main job: pipeline up, a benign workload and an attack in podman, the alerts."""
    from eunomia.commands.demo import run_demo

    raise typer.Exit(run_demo(load_settings()))


def _register_features() -> None:
    """Each feature's commands live in their own module of this package; its
    ``register(app, worker_app)`` adds them."""
    from importlib import import_module

    for name in ("acls", "producer", "replay", "rules", "seccomp", "worker"):
        import_module(f"eunomia.commands.{name}").register(app, worker_app)
    if worker_app.registered_commands:
        app.add_typer(worker_app, name="worker")


def main() -> None:
    _register_features()
    try:
        rv = app(standalone_mode=False)
        # click returns the code of a typer.Exit instead of raising it here
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except EunomiaError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        import click
        from pydantic import ValidationError

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, ValidationError):
            Console(stderr=True, soft_wrap=True).print(
                f"[red]error:[/] invalid configuration: {_validation_line(exc)}", highlight=False)
            sys.exit(1)
        raise


def _validation_line(exc: Exception) -> str:
    """pydantic's errors as one line: ``field: message; ...`` (the value only if
    it is not a secret: pydantic leaves SecretStr values out of ``msg``)."""
    title: str = exc.title  # type: ignore[attr-defined]
    section = "" if title == "Settings" else title.removesuffix("Settings").lower() + "."
    parts = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{section}{loc}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


if __name__ == "__main__":
    main()
