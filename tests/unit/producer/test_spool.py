"""The spool alone: FIFO order, byte bound and lost ranges, out-of-order acks,
restart at the commit point, and a torn tail cut off after a crash."""

from __future__ import annotations

from pathlib import Path

from eunomia.producer.spool import Spool


def _fill(sp: Spool, n: int, start: int = 0, size: int = 100) -> None:
    for i in range(start, start + n):
        sp.append("raw.events", b"host", i.to_bytes(4, "big") * (size // 4), i)


def _seqs(recs) -> list[int]:
    return [r.seq for r in recs]


def test_fifo_across_segments_and_none_fields(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20, segment_bytes=1000)
    _fill(sp, 50)
    sp.append("containers", None, None, None)
    assert len(list(tmp_path.glob("*.seg"))) > 3
    recs = sp.read(1000)
    assert _seqs(recs[:50]) == list(range(50))
    assert recs[7].value == (7).to_bytes(4, "big") * 25 and recs[7].key == b"host"
    assert (recs[50].topic, recs[50].key, recs[50].value, recs[50].seq) == ("containers", None, None, None)
    assert sp.read(10) == [] and sp.unread == 0 and len(sp) == 51


def test_full_spool_drops_and_records_ranges(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 10_000, segment_bytes=4000)
    _fill(sp, 200)  # ~125 bytes a record on disk: about 80 fit
    kept = _seqs(sp.read(1000))
    assert kept == list(range(len(kept))) and 0 < len(kept) < 200
    assert sp.dropped == 200 - len(kept)
    assert sp.lost_ranges == [(len(kept), 199)]
    assert sp.bytes <= 10_000
    # a small record still fits afterwards; the next drop opens a new range
    sp.append("t", None, b"x", 500)
    assert sp.bytes <= 10_000
    _fill(sp, 1, start=501, size=4000)
    assert sp.lost_ranges[-1] == (501, 501)


def test_out_of_order_acks_move_commit_over_prefix_only(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20, segment_bytes=500)
    _fill(sp, 20)
    recs = sp.read(20)
    for r in recs[5:]:
        sp.ack(r.token)
    assert len(sp) == 20  # 0..4 not acknowledged: nothing committed
    for r in recs[:5]:
        sp.ack(r.token)
    assert len(sp) == 0
    assert len(list(tmp_path.glob("*.seg"))) <= 1  # acknowledged segments deleted


def test_restart_resumes_at_commit_point(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20, segment_bytes=600)
    _fill(sp, 30)
    recs = sp.read(12)
    for r in recs[:10]:
        sp.ack(r.token)
    sp.close()
    sp2 = Spool(tmp_path, 1 << 20, segment_bytes=600)
    assert len(sp2) == 20 and sp2.unread == 20
    _fill(sp2, 3, start=30)
    assert _seqs(sp2.read(100)) == list(range(10, 33))


def test_torn_tail_is_cut(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    _fill(sp, 5)
    sp.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])  # the last record half written
    sp2 = Spool(tmp_path, 1 << 20)
    assert _seqs(sp2.read(10)) == [0, 1, 2, 3]


def test_corrupt_record_stops_replay_of_that_segment(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20)
    _fill(sp, 5)
    sp.close()
    seg = sorted(tmp_path.glob("*.seg"))[-1]
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF
    seg.write_bytes(bytes(data))
    assert _seqs(Spool(tmp_path, 1 << 20).read(10)) == [0, 1, 2, 3]


def test_reads_interleaved_with_appends(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 1 << 20, segment_bytes=300)
    got: list[int] = []
    for i in range(40):
        _fill(sp, 1, start=i)
        if i % 3 == 0:
            for r in sp.read(2):
                got.append(r.seq)
                sp.ack(r.token)
    for r in sp.read(100):
        got.append(r.seq)
        sp.ack(r.token)
    assert got == list(range(40)) and len(sp) == 0


def test_record_larger_than_read_chunk(tmp_path: Path) -> None:
    sp = Spool(tmp_path, 64 << 20)
    big = bytes(range(256)) * (3 * 4096)  # 3 MiB, larger than one read chunk
    _fill(sp, 2)
    sp.append("raw.events", b"k", big, 2)
    _fill(sp, 2, start=3)
    recs = sp.read(10)
    assert _seqs(recs) == [0, 1, 2, 3, 4] and recs[2].value == big


def test_sigkill_keeps_synced_records(tmp_path: Path) -> None:
    """A producer killed mid-write: every record synced before the kill is read back
    after a restart, in order, and a torn last record is cut, not replayed."""
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", f"""
import sys
from eunomia.producer.spool import Spool
sp = Spool({str(tmp_path)!r}, 1 << 30, segment_bytes=64 * 1024)
for i in range(1000):
    sp.append("raw.events", b"h", i.to_bytes(4, "big") * 40, i)
sp.sync(force=True)
print("synced", flush=True)
i = 1000
while True:
    sp.append("raw.events", b"h", i.to_bytes(4, "big") * 40, i)
    i += 1
    if not i % 7:
        sp.sync()
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "synced"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    seqs = [r.seq for r in Spool(tmp_path, 1 << 30).read(10**9)]
    assert len(seqs) >= 1000 and seqs == list(range(len(seqs)))
