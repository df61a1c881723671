"""``eunomia record`` and ``eunomia replay``: the terminal side (progress bars,
tables, exit codes); the work is in ``record.py``, ``replay.py`` and
``replay_offline.py``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eunomia.config import load_settings
from eunomia.processors.replay.recording import SkippedBlock

__all__ = ["register"]

console = Console(stderr=True)


def _ts(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _progress(total: int | None, label: str) -> Progress:
    cols = [TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn() if total else
            TextColumn("{task.completed:,} msgs"),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    return Progress(*cols, console=console, transient=False, disable=not console.is_terminal)


def _warn_skip(skip: SkippedBlock) -> None:
    where = f"resumed at byte {skip.resumed_at}" if skip.resumed_at is not None else "nothing after it"
    console.print(f"[yellow]warning:[/] skipped corrupt block {skip.block} at byte {skip.offset}: "
                  f"{skip.reason}; {where}", highlight=False)


def record_command(
    topics: list[str] = typer.Argument(..., help="topics: logical (raw.events) or full names"),
    out: Path = typer.Option(..., "--out", "-o", help="recording file to write (.avro)"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="start at the oldest offset"),
    max_events: int | None = typer.Option(None, "--max-events", min=1, help="stop after N messages"),
    duration: float | None = typer.Option(None, "--duration", min=0.0, help="stop after S seconds"),
    to_end: bool = typer.Option(False, "--to-end",
                                help="with --from-beginning: stop at the end offsets seen at start"),
    codec: str = typer.Option("zstandard", "--codec", help="zstandard, deflate or null"),
) -> None:
    """Record messages of TOPIC... into an Avro Object Container File."""
    import time

    from eunomia.processors.replay.record import record

    with _progress(max_events, f"recording → {out}") as bar:
        task = bar.add_task("rec", total=max_events, rate="")
        t0 = time.monotonic()
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            dt = time.monotonic() - t0
            bar.update(task, advance=n, rate=f"{done / dt:,.0f}/s" if dt else "")

        stats = record(load_settings(), topics, out, from_beginning=from_beginning,
                       max_events=max_events, duration=duration, to_end=to_end, codec=codec,
                       progress=step)
    table = Table("topic", "partitions", "messages", "bytes", "first", "last",
                  title=f"{out}: {stats.messages:,} messages in {stats.elapsed_s:.1f} s"
                        f" (stopped by {stats.stopped_by})")
    for name, st in stats.topics.items():
        table.add_row(name, ",".join(map(str, sorted(st.partitions))) or "-", f"{st.messages:,}",
                      f"{st.bytes:,}", _ts(st.first_ts_ms), _ts(st.last_ts_ms))
    Console().print(table)


def replay_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a recording"),
    to_kafka: bool = typer.Option(False, "--to-kafka", help="publish the recording into Kafka"),
    topic: str | None = typer.Option(None, "--topic", help="publish everything to this topic"),
    speed: str = typer.Option("max", "--speed", help="max, 1x (recorded pace) or Nx"),
    keep_partitions: bool = typer.Option(False, "--keep-partitions",
                                         help="publish to the recorded partition numbers"),
    keep_timestamps: bool = typer.Option(False, "--keep-timestamps",
                                         help="publish with the recorded message timestamps"),
    rules: list[Path] = typer.Option(None, "--rules", help="rule files or folders: run offline"),
    expect: Path | None = typer.Option(None, "--expect", exists=True, dir_okay=False,
                                       help="expectations YAML: exit 1 with a diff when alerts differ"),
    fmt: str = typer.Option("table", "--format", help="table or json"),
    skip_corrupt: bool = typer.Option(False, "--skip-corrupt",
                                      help="skip damaged blocks and replay the readable rest"),
) -> None:
    """Replay a recording into Kafka (--to-kafka) or through the rule engine offline (--rules)."""
    if to_kafka == bool(rules):
        raise typer.BadParameter("give exactly one of --to-kafka or --rules")
    if fmt not in ("table", "json"):
        raise typer.BadParameter("--format is table or json")
    if to_kafka:
        _replay_kafka(file, topic, speed, keep_partitions, keep_timestamps, skip_corrupt)
    else:
        _replay_rules(file, rules, expect, fmt, skip_corrupt)


def _replay_kafka(file: Path, topic: str | None, speed: str, keep_partitions: bool,
                  keep_timestamps: bool, skip_corrupt: bool) -> None:
    from eunomia.processors.replay.recording import RecordingReader
    from eunomia.processors.replay.to_kafka import parse_speed, replay_to_kafka

    factor = parse_speed(speed)
    total = None if skip_corrupt else RecordingReader(file).scan()
    with _progress(total, f"replaying {file.name}") as bar:
        task = bar.add_task("replay", total=total, rate="")
        stats = replay_to_kafka(load_settings(), file, topic=topic, speed=factor,
                                keep_partitions=keep_partitions, keep_timestamps=keep_timestamps,
                                skip_corrupt=skip_corrupt, on_skip=_warn_skip,
                                progress=lambda n: bar.update(task, advance=n))
    table = Table("topic", "messages", title=f"replayed {stats.messages:,} messages in "
                  f"{stats.elapsed_s:.2f} s ({stats.rate:,.0f}/s)")
    for name, n in stats.per_topic.items():
        table.add_row(name, f"{n:,}")
    Console().print(table)
    if stats.skipped:
        console.print(f"[yellow]{len(stats.skipped)} corrupt block(s) skipped[/]")


def _replay_rules(file: Path, rules: list[Path], expect: Path | None, fmt: str,
                  skip_corrupt: bool) -> None:
    from eunomia.processors.replay.expectations import compare, load_expectations, render_diff
    from eunomia.processors.replay.offline import replay_offline

    expectations = load_expectations(expect) if expect else None
    result = replay_offline(file, rules, skip_corrupt=skip_corrupt, on_skip=_warn_skip,
                            default_span_ns=load_settings().rules.default_maxspan_ns)
    out = Console()
    if fmt == "json":
        sys.stdout.write(json.dumps({"events": result.events, "alerts": result.alerts},
                                    sort_keys=True) + "\n")
    else:
        table = Table("alert_id", "rule", "level", "group key", "events", "first seen",
                      title=f"{file.name}: {len(result.alerts)} alert(s) from {result.events:,} events"
                            f" ({result.mode})")
        for a in result.alerts:
            table.add_row(a["alert_id"], a["rule_id"], a["level"], a["group_key"],
                          str(a["event_count"]), _ts(a["first_seen_ns"] // 1_000_000))
        out.print(table)
    if expectations is not None:
        diff = compare(expectations, result.alerts)
        if diff:
            console.print(render_diff(diff, expect))
            raise typer.Exit(1)
        console.print(f"[green]alerts match {expect}[/]")


def register(app: typer.Typer, worker_app: typer.Typer) -> None:
    app.command("record")(record_command)
    app.command("replay")(replay_command)
