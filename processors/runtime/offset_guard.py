"""Finds input messages that faust skipped, and has them read again.

faust-streaming can drop a message without tracking it and commit past it
(docs/reliability.md). Agents pass their events through ``admit``: a partition's
offsets must follow one another from the committed offset or the log start; at a
hole the partition is sought back and nothing after it is acknowledged. Offsets
gone for good are given up after ``give_up_s``, logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

__all__ = ["OffsetGuard"]

log = logging.getLogger(__name__)

RESEEKS = Counter("eunomia_input_reseeks_total",
                  "input partitions sought back to an offset the stream skipped", ["topic"])
GIVEN_UP = Counter("eunomia_input_offsets_given_up_total",
                   "input offsets that did not come back after a seek (deleted before read)",
                   ["topic"])


@dataclass
class _Hole:
    """A partition waiting for its expected offset (``OffsetGuard._next``) to come back."""

    first_seek: float
    last_seek: float
    topic: str


class OffsetGuard:
    """Admits a partition's events only in offset order, re-reading holes."""

    def __init__(self, committed: Callable[[Any], int | None],
                 seek: Callable[[Any, int], Awaitable[None]], *,
                 skip: Callable[[Any, int, int], Awaitable[None]] | None = None,
                 start: Callable[[Any], Awaitable[int | None]] | None = None,
                 reseek_s: float = 1.0, give_up_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.committed = committed
        self.seek = seek
        self.skip = skip  # tells the consumer a given-up range counts as done
        self.start = start  # where a partition without a committed offset begins
        self.reseek_s = reseek_s
        self.give_up_s = give_up_s
        self.clock = clock
        self._next: dict[Any, int] = {}  # tp -> offset expected next
        self._waiting: dict[Any, _Hole] = {}  # tp -> the hole it waits on
        self.stats = {"holes": 0, "reseeks": 0, "held_back": 0, "given_up": 0}

    @classmethod
    def for_app(cls, app: Any, **kw: Any) -> OffsetGuard:
        """A guard reading faust's committed offsets and seeking its consumer."""

        def committed(tp: Any) -> int | None:
            # set from the broker at each assignment (Consumer.perform_seek), then
            # by each commit: the next offset this group has to read
            offsets = getattr(app.consumer, "_committed_offset", None)
            return offsets.get(tp) if offsets is not None else None

        async def seek(tp: Any, offset: int) -> None:
            await app.consumer.seek(tp, offset)

        async def skip(tp: Any, first: int, last: int) -> None:
            # faust's own record of offsets that do not exist (compaction, markers):
            # without it the commit of this partition would wait for them forever
            add_gap = getattr(app.consumer, "_add_gap", None)
            if add_gap is not None:
                await add_gap(tp, first, last)

        async def start(tp: Any) -> int | None:
            # no committed offset (faust also reads a commit of 0 as none): the
            # group starts at the log start, as auto_offset_reset=earliest says
            offsets = await app.consumer.earliest_offsets(tp)
            return offsets.get(tp)

        return cls(committed, seek, skip=skip, start=start, **kw)

    @classmethod
    def install(cls, app: Any, **kw: Any) -> OffsetGuard:
        """``for_app``, reset at every rebalance."""
        guard = cls.for_app(app, **kw)

        async def _reset(sender: Any, *args: Any, **kwargs: Any) -> None:
            guard.reset()

        app.on_partitions_assigned.connect(_reset)
        app.on_partitions_revoked.connect(_reset)

        @app.timer(guard.reseek_s)
        async def _reseek() -> None:
            await guard.tick()

        return guard

    async def tick(self) -> None:
        """Seek again the partitions still waiting: when every event read after a
        seek arrived within ``reseek_s`` and was held back, nothing else would
        come to trigger the next seek (and, after ``give_up_s``, the give-up)."""
        now = self.clock()
        for tp, hole in list(self._waiting.items()):
            if now - hole.last_seek >= self.reseek_s:
                hole.last_seek = now
                await self._seek(tp, self._next[tp], hole.topic)

    def reset(self) -> None:
        """Forget expectations: after a rebalance the committed offsets are the truth."""
        self._next.clear()
        self._waiting.clear()

    async def admit(self, events: Iterable[Any]) -> list[Any]:
        """The events to process now, in order; the others are held back
        unacknowledged (faust reads them again after the seek)."""
        out: list[Any] = []
        expect, waiting = self._next, self._waiting
        for ev in events:
            msg = ev.message
            tp, offset = msg.tp, msg.offset
            if expect.get(tp) == offset and tp not in waiting:  # the usual case, kept cheap
                expect[tp] = offset + 1
                out.append(ev)
            elif await self._accept(tp, offset, msg.topic):
                out.append(ev)
            else:
                self.stats["held_back"] += 1
                msg.acked = True  # faust's ack skips it: no commit may pass the hole
        return out

    async def admit_one(self, ev: Any) -> bool:
        """``admit`` for an agent that reads one event at a time."""
        return bool(await self.admit([ev]))

    async def _accept(self, tp: Any, offset: int, topic: str) -> bool:
        expected = self._next.get(tp)
        if expected is None:
            expected = self.committed(tp)
        if expected is None and self.start is not None:
            expected = await self._start(tp)
        if expected is None or offset <= expected:
            # in order, or read again after a rebalance (at-least-once: process it)
            if offset == expected or expected is None or tp not in self._waiting:
                self._waiting.pop(tp, None)
                self._next[tp] = offset + 1
                return True
            return False  # an older copy still in flight while we wait for ``expected``
        now = self.clock()
        hole = self._waiting.get(tp)
        if hole is None:
            self.stats["holes"] += 1
            log.warning("input %s: offsets %d..%d missing (skipped by the stream, or deleted); "
                        "reading them again", tp, expected, offset - 1)
            self._waiting[tp] = _Hole(now, now, topic)
            self._next[tp] = expected  # also spares the held-back events a lookup
            await self._seek(tp, expected, topic)
            return False
        first = hole.first_seek
        if now - first >= self.give_up_s:
            self.stats["given_up"] += offset - expected
            log.error("input %s: offsets %d..%d did not come back after %.0f s of seeking "
                      "(deleted before they were read?); going on without them",
                      tp, expected, offset - 1, now - first)
            GIVEN_UP.labels(topic).inc(offset - expected)
            del self._waiting[tp]
            self._next[tp] = offset + 1
            if self.skip is not None:
                await self.skip(tp, expected, offset - 1)
            return True
        if now - hole.last_seek >= self.reseek_s:
            hole.last_seek = now
            await self._seek(tp, expected, topic)
        return False

    async def _start(self, tp: Any) -> int | None:
        try:
            return await self.start(tp)  # type: ignore[misc]
        except Exception as exc:  # the broker unreachable right now: accept as before
            log.warning("input %s: no committed offset and its log start is unknown (%s); "
                        "starting at the first event read", tp, exc)
            return None

    async def _seek(self, tp: Any, offset: int, topic: str) -> None:
        self.stats["reseeks"] += 1
        RESEEKS.labels(topic).inc()
        try:
            await self.seek(tp, offset)
        except Exception as exc:  # e.g. revoked meanwhile: tick() tries again
            log.warning("input %s: seek to %d failed (%s); trying again", tp, offset, exc)
