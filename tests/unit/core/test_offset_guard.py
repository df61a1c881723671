"""OffsetGuard: a partition's events are admitted only in offset order; a hole
(faust's stream dropped a message) is sought back and read again, and nothing
after it is acknowledged meanwhile. Pure logic: events are (tp, offset) pairs."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from eunomia.processors.runtime.offset_guard import OffsetGuard

TP = ("raw.events", 1)
OTHER = ("raw.events", 2)


def ev(offset: int, tp: Any = TP) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, offset=offset, topic=tp[0], acked=False))


class Rig:
    def __init__(self, committed: dict[Any, int | None]) -> None:
        self.committed = committed
        self.now = 0.0
        self.seeks: list[tuple[Any, int]] = []
        self.skipped: list[tuple[Any, int, int]] = []

        async def seek(tp: Any, offset: int) -> None:
            self.seeks.append((tp, offset))

        async def skip(tp: Any, first: int, last: int) -> None:
            self.skipped.append((tp, first, last))

        self.guard = OffsetGuard(self.committed.get, seek, skip=skip, reseek_s=1.0,
                                 give_up_s=10.0, clock=lambda: self.now)

    def admit(self, events: list[Any]) -> list[int]:
        return [e.message.offset for e in asyncio.run(self.guard.admit(events))]


def test_consecutive_offsets_from_the_committed_one_pass_untouched() -> None:
    rig = Rig({TP: 41, OTHER: 7})
    batch = [ev(41), ev(7, OTHER), ev(42), ev(43), ev(8, OTHER)]
    assert rig.admit(batch) == [41, 7, 42, 43, 8]
    assert rig.seeks == [] and not any(e.message.acked for e in batch)


def test_a_skipped_head_offset_is_read_again_and_nothing_after_it_is_acknowledged() -> None:
    """The CI case: committed 41, faust's stream dropped 41 and delivered 42..."""
    rig = Rig({TP: 41})
    first = [ev(42), ev(43), ev(44)]
    assert rig.admit(first) == []
    assert rig.seeks == [(TP, 41)]
    # held back events are marked so faust's ack skips them: no commit can pass 41
    assert all(e.message.acked for e in first)
    # a straggler fetched before the seek is held back too, without another seek
    rig.now = 0.5
    assert rig.admit([ev(45)]) == []
    assert rig.seeks == [(TP, 41)]
    # after the seek everything comes again, from 41
    assert rig.admit([ev(41), ev(42), ev(43), ev(44), ev(45), ev(46)]) == [41, 42, 43, 44, 45, 46]
    assert rig.guard.stats["holes"] == 1 and rig.guard.stats["given_up"] == 0


def test_a_hole_in_the_middle_is_sought_back_and_other_partitions_go_on() -> None:
    rig = Rig({TP: 0, OTHER: 0})
    assert rig.admit([ev(0), ev(1), ev(0, OTHER), ev(3), ev(1, OTHER), ev(4)]) == [0, 1, 0, 1]
    assert rig.seeks == [(TP, 2)]
    assert rig.admit([ev(2), ev(3), ev(4)]) == [2, 3, 4]


def test_the_seek_is_repeated_while_the_offset_does_not_come_back() -> None:
    rig = Rig({TP: 10})
    rig.admit([ev(12)])
    rig.now = 0.4
    rig.admit([ev(13)])
    rig.now = 1.2
    rig.admit([ev(12)])
    assert rig.seeks == [(TP, 10), (TP, 10)]


def test_offsets_that_never_come_back_are_given_up_loudly_and_marked_done(caplog: Any) -> None:
    """Retention deleted them before they were read: after give_up_s the guard
    goes on, counts them and tells the consumer the range is done."""
    rig = Rig({TP: 100})
    assert rig.admit([ev(150)]) == []
    rig.now = 5.0
    assert rig.admit([ev(150)]) == []
    rig.now = 10.5
    with caplog.at_level("ERROR"):
        assert rig.admit([ev(150), ev(151)]) == [150, 151]
    assert rig.guard.stats["given_up"] == 50
    assert rig.skipped == [(TP, 100, 149)]
    assert "100..149 did not come back" in caplog.text


def test_without_a_committed_offset_the_log_start_is_expected() -> None:
    """CI: a successor took over a partition never committed; faust dropped its
    first fetch (offsets 0..1521) while recovering tables and did not seek back,
    because there was no committed offset to seek to. The log start is where
    such a group begins (auto_offset_reset=earliest): the hole is read again."""
    rig = Rig({})
    lookups: list[Any] = []

    async def start(tp: Any) -> int | None:
        lookups.append(tp)
        return 0

    rig.guard.start = start
    held = [ev(1522), ev(1523)]
    assert rig.admit(held) == []
    assert rig.seeks == [(TP, 0)] and all(e.message.acked for e in held)
    assert rig.admit([ev(1524)]) == []
    assert lookups == [TP], "the held-back events do not ask the broker again"
    assert rig.admit([ev(0), ev(1), ev(2)]) == [0, 1, 2]


def test_an_unknown_log_start_falls_back_to_the_first_event(caplog: Any) -> None:
    rig = Rig({})

    async def start(tp: Any) -> int | None:
        raise RuntimeError("broker unreachable")

    rig.guard.start = start
    with caplog.at_level("WARNING"):
        assert rig.admit([ev(5), ev(6)]) == [5, 6]
    assert "log start is unknown" in caplog.text and rig.seeks == []


def test_without_a_committed_offset_or_a_start_the_first_event_sets_the_expectation() -> None:
    rig = Rig({})
    assert rig.admit([ev(5), ev(6)]) == [5, 6]
    assert rig.admit([ev(8)]) == []
    assert rig.seeks == [(TP, 7)]


def test_older_offsets_read_again_after_a_rebalance_are_processed_again() -> None:
    """At-least-once: after reset the committed offset is the truth, and events
    before the last processed one come again (faust seeks to the commit)."""
    rig = Rig({TP: 3})
    assert rig.admit([ev(3), ev(4), ev(5), ev(6)]) == [3, 4, 5, 6]
    rig.guard.reset()
    assert rig.admit([ev(3), ev(4), ev(5), ev(6), ev(7)]) == [3, 4, 5, 6, 7]
    assert rig.seeks == []


def test_while_waiting_an_older_copy_is_held_back_not_processed_twice() -> None:
    rig = Rig({TP: 0})
    assert rig.admit([ev(0), ev(1)]) == [0, 1]
    assert rig.admit([ev(3)]) == []  # 2 missing: seek to 2
    assert rig.admit([ev(1)]) == []  # a stale copy of 1 while waiting for 2
    assert rig.admit([ev(2), ev(3)]) == [2, 3]


def test_tick_seeks_again_when_nothing_comes_to_trigger_it() -> None:
    """CI: the only events read after the first seek came within reseek_s and
    were held back; nothing else arrived, so the guard waited forever. The
    worker's timer calls tick(): it seeks again, and the give-up follows."""
    rig = Rig({TP: 10})
    assert rig.admit([ev(15), ev(16)]) == []
    rig.now = 0.2
    assert rig.admit([ev(15), ev(16)]) == []  # read again at once, held back
    asyncio.run(rig.guard.tick())
    assert rig.seeks == [(TP, 10)], "no second seek before reseek_s"
    for t in (1.5, 3.0, 4.5, 6.0, 7.5, 9.0, 10.5):
        rig.now = t
        asyncio.run(rig.guard.tick())
    assert len(rig.seeks) == 8 and set(rig.seeks) == {(TP, 10)}
    assert rig.admit([ev(15), ev(16)]) == [15, 16]
    assert rig.skipped == [(TP, 10, 14)]


def test_a_failed_seek_is_logged_and_tried_again(caplog: Any) -> None:
    rig = Rig({TP: 3})
    calls: list[int] = []

    async def failing_seek(tp: Any, offset: int) -> None:
        calls.append(offset)
        raise RuntimeError("no current assignment")

    rig.guard.seek = failing_seek
    with caplog.at_level("WARNING"):
        assert rig.admit([ev(5)]) == []
        rig.now = 2.0
        asyncio.run(rig.guard.tick())
    assert calls == [3, 3]
    assert "seek to 3 failed" in caplog.text
