"""``eunomia replay --rules``: a recording through the rule engine, no Kafka.

The live pipeline's own code does the work (``Enricher``, ``rules.FleetEngine``) and
enriched events take the same Avro round trip as on ``enriched.events``, so
alert ids match the live pipeline's. A recording of enriched events replays as
such; otherwise its raw events are enriched first. The end of the recording is
the end of time: held events are released and every window closes.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eunomia.errors import EunomiaError
from eunomia.processors.enrich.enricher import Enricher
from eunomia.processors.replay.recording import RecordingReader, SkippedBlock
from eunomia.processors.rules import DEFAULT_SPAN_NS, RuleSet, load_files
from eunomia.processors.rules.fleet import EventTimeError, FleetEngine
from eunomia.schemas import AvroCodec, CodecError

__all__ = ["END_OF_TIME", "OfflineReplay", "OfflineResult", "replay_offline"]

END_OF_TIME = 2**62
# Offline, a container's events wait in the enricher until the container's
# record shows up in the recording, which can be seconds of event time later
# (a short-lived container is looked up after the fact); meanwhile other
# containers' events move the engine's watermark on. Live, each container's
# events reach the rules engine of their own partition within the enrich
# grace, in order. A reorder allowance larger than any grace gives offline the
# in-order result, which is what live computes when nothing is late there.
OFFLINE_LATENESS_NS = 30_000_000_000
RAW = frozenset({"raw_event", "syscall_counts"})


@dataclass
class OfflineResult:
    alerts: list[dict[str, Any]]
    events: int  # enriched events evaluated by the engine
    mode: str  # "enriched", "raw" or "empty"
    messages: Counter[str] = field(default_factory=Counter)  # per schema, plus "undecodable"
    skipped: list[SkippedBlock] = field(default_factory=list)
    late: int = 0


class OfflineReplay:
    """Feeds decoded messages to the enricher and the engine; one instance per
    recording (both hold state)."""

    def __init__(self, ruleset: RuleSet, *, lateness_ns: int = OFFLINE_LATENESS_NS,
                 grace_ns: int = 5 * 10**9, codec: AvroCodec | None = None,
                 default_span_ns: int = DEFAULT_SPAN_NS, max_jump_ns: int = 86400 * 10**9,
                 host_timeout_ns: int = 300 * 10**9) -> None:
        self.codec = codec or AvroCodec()
        self.engine = FleetEngine(ruleset, lateness_ns=lateness_ns, default_span_ns=default_span_ns,
                                  max_jump_ns=max_jump_ns, host_timeout_ns=host_timeout_ns)
        # wall-clock release makes no sense offline: only event time releases holds
        self.enricher = Enricher(grace_ns=grace_ns, max_wall_hold_s=float("inf"))
        self.alerts: list[dict[str, Any]] = []
        self.mode = "empty"
        self.events = 0
        self.messages: Counter[str] = Counter()

    def feed(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            self.feed_decoded(key, None, None)
            return
        try:
            name, rec = self.codec.decode_named(value)
        except CodecError:
            self.messages["undecodable"] += 1  # live: the DLQ
            return
        self.feed_decoded(key, name, rec)

    def feed_decoded(self, key: bytes | None, name: str | None, rec: dict[str, Any] | None) -> None:
        """One recorded message, decoded (``name`` None: a tombstone)."""
        if name is None or rec is None:
            if key is not None:  # a container removed (compacted topic)
                self.messages["tombstone"] += 1
                self._enriched(self.enricher.on_container(key.decode(errors="replace"), None))
            return
        self.messages[name] += 1
        if name == "container":
            if key is not None:
                self._enriched(self.enricher.on_container(key.decode(), rec))
            return
        if name == "enriched_event":
            if self.mode != "enriched":
                self.mode = "enriched"
            self._evaluate(rec)
        elif name in RAW and self.mode != "enriched":
            self.mode = "raw"
            try:
                outs = (self.enricher.on_raw_event(rec) if name == "raw_event"
                        else self.enricher.on_syscalls(rec))
            except (KeyError, TypeError, ValueError):
                self.messages["unenrichable"] += 1  # live: the DLQ
                return
            self._enriched(outs)

    def _enriched(self, outs: Iterable[tuple[str, dict[str, Any]]]) -> None:
        if self.mode == "enriched":
            return
        codec = self.codec
        for _, rec in outs:
            self._evaluate(codec.decode(codec.encode("enriched_event", rec), expect="enriched_event"))

    def _evaluate(self, event: dict[str, Any]) -> None:
        self.events += 1
        try:
            self.alerts += self.engine.process(event)
        except EventTimeError:
            self.messages["refused"] += 1  # live: the DLQ, with the reason

    def finish(self) -> list[dict[str, Any]]:
        """End of the recording: release held events, apply buffered ones, close windows."""
        if self.mode == "raw":
            for key in list(self.enricher.pending):
                self._enriched(self.enricher.release_key(key))
        self.alerts += self.engine.flush()
        self.alerts += self.engine.advance_watermark(END_OF_TIME)
        return self.alerts


def load_rules(paths: Iterable[Path]) -> RuleSet:
    """Rule files, or folders of them (``*.yaml``/``*.yml``, sorted)."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted([*p.glob("*.yaml"), *p.glob("*.yml")])
        elif p.exists():
            files.append(p)
        else:
            raise EunomiaError(f"no rule file or folder at {p}")
    if not files:
        raise EunomiaError(f"no rule files (*.yaml) in {', '.join(map(str, paths))}")
    return load_files(files)


def replay_offline(path: Path, rules: Iterable[Path] | RuleSet, *, skip_corrupt: bool = False,
                   on_skip: Callable[[SkippedBlock], None] | None = None,
                   lateness_ns: int = OFFLINE_LATENESS_NS,
                   default_span_ns: int = DEFAULT_SPAN_NS) -> OfflineResult:
    """The alerts the rules raise on a recording, deterministic for one file."""
    ruleset = rules if isinstance(rules, RuleSet) else load_rules(rules)
    reader = RecordingReader(path, skip_corrupt=skip_corrupt, on_skip=on_skip)
    run = OfflineReplay(ruleset, lateness_ns=lateness_ns, default_span_ns=default_span_ns)
    for key, name, rec in in_live_order(reader, run.codec, run.messages):
        run.feed_decoded(key, name, rec)
    alerts = run.finish()
    return OfflineResult(alerts, run.events, run.mode, run.messages, reader.skipped,
                         run.engine.stats["late"])


def _event_time(name: str | None, rec: dict[str, Any] | None) -> int | None:
    if rec is None:
        return None
    if name == "enriched_event":
        return int(rec["event"]["ts_ns"])
    ts = rec.get("ts_ns")
    return None if ts is None else int(ts)


def in_live_order(reader: RecordingReader, codec: AvroCodec, messages: Counter[str]
                  ) -> Iterator[tuple[bytes | None, str | None, dict[str, Any] | None]]:
    """The recording's messages in the order live workers meet them: each topic
    partition in offset order, the partitions merged by event time (a recording
    holds long runs of one topic, which one engine would otherwise take as one
    host's time jumping back and forth). A message with no time keeps its place
    behind the one before it."""
    streams: dict[tuple[str, int], list[tuple[int, int, bytes | None, str | None, Any]]] = {}
    n = 0
    for batch in reader.raw_blocks():
        for r in batch:
            value = r["value"]
            name, rec = None, None
            if value is not None:
                try:
                    name, rec = codec.decode_named(value)
                except CodecError:
                    messages["undecodable"] += 1  # live: the DLQ
                    continue
            stream = streams.setdefault((r["topic"], r["partition"]), [])
            ts = _event_time(name, rec)
            if ts is None:
                ts = stream[-1][0] if stream else 0
            n += 1
            stream.append((ts, n, r["key"], name, rec))
    for _, _, key, name, rec in heapq.merge(*streams.values(), key=lambda item: (item[0], item[1])):
        yield key, name, rec
