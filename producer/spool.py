"""A bounded, append-only, on-disk FIFO of messages that could not go to Kafka yet.

Segments ``<dir>/<number, 20 digits>.seg`` hold records
``u32 body_len | u32 crc32(body) | body`` with
``body = i64 seq (-1: none) | u8 flags | u16 topic_len | u32 key_len | topic | key | value``,
so a torn tail is found and cut off on open; ``<dir>/commit`` holds the point
before which every record was acknowledged by its delivery report. A record
leaves only once Kafka confirmed it; one that does not fit ``max_bytes`` is
dropped and its seq kept in ``lost_ranges``.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Spool", "SpoolRecord"]

log = logging.getLogger(__name__)

_PREFIX = struct.Struct("<II")  # body_len, crc32
_HEAD = struct.Struct("<qBHI")  # seq, flags, topic_len, key_len
_FULL = struct.Struct("<IIqBHI")  # prefix and head together, for reading
_COMMIT = struct.Struct("<qQ")  # segment number, offset
_KEY_NONE = 1
_VALUE_NONE = 2
_SUFFIX = ".seg"
_READ_CHUNK = 1 << 20


@dataclass(slots=True)
class SpoolRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    seq: int | None
    token: int = -1  # position in the read order; pass it to Spool.ack


def _encode(topic: str, key: bytes | None, value: bytes | None, seq: int | None) -> bytes:
    t = topic.encode()
    flags = (_KEY_NONE if key is None else 0) | (_VALUE_NONE if value is None else 0)
    k = key or b""
    body = b"".join((_HEAD.pack(-1 if seq is None else seq, flags, len(t), len(k)), t, k, value or b""))
    return _PREFIX.pack(len(body), zlib.crc32(body)) + body


class Spool:
    """Disk FIFO with a byte bound, out-of-order acks and a persistent commit point.

    ``read`` hands records out in FIFO order and ``ack`` marks one delivered (reports of
    different partitions arrive out of order); the commit point moves only over a
    contiguous acknowledged prefix, and a restart resumes reading there."""

    def __init__(self, directory: Path, max_bytes: int, *, segment_bytes: int | None = None,
                 fsync_interval: float = 1.0) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.reserved_bytes = 0  # budget another spool sharing the limit holds
        self.segment_bytes = segment_bytes or max(64 * 1024, min(16 << 20, max_bytes // 8))
        self.fsync_interval = fsync_interval
        self.dropped = 0
        self.lost_ranges: list[tuple[int, int]] = []
        self._sizes: dict[int, int] = {}  # segment -> bytes on disk
        self._commit = self._load_commit()
        self.messages = self._recover()  # unacknowledged records on disk
        self._unread = self.messages
        self._wseg = max(self._sizes, default=self._commit[0]) + 1
        self._wfile = open(self._path(self._wseg), "ab")  # noqa: SIM115 - lives with the spool
        self._sizes[self._wseg] = 0
        self._disk_bytes = sum(self._sizes.values())
        self._rfile: tuple[int, object] | None = None
        self._release()
        self._rpos = self._commit if self._commit[0] in self._sizes else (self._first(), 0)
        self._next_token = 0
        self._base = 0  # token of the oldest unacknowledged handed-out record
        self._ends: deque[tuple[int, int]] = deque()  # (segment, end offset) per handed-out token
        self._acked: set[int] = set()
        self._topic_names: dict[bytes, str] = {}
        self._dirty_commit = False
        self._released_upto = -1
        self._last_fsync = time.monotonic()
        self._last_drop_seq: int | None = None

    # -- state ---------------------------------------------------------------
    @property
    def bytes(self) -> int:
        return self._disk_bytes

    @property
    def unread(self) -> int:
        """Records appended but not handed out by ``read`` yet."""
        return self._unread

    def __len__(self) -> int:
        return self.messages

    # -- writing -------------------------------------------------------------
    def append(self, topic: str, key: bytes | None, value: bytes | None, seq: int | None) -> bool:
        """Append one record; False (and counted, seq range recorded) when it does not fit."""
        rec = _encode(topic, key, value, seq)
        if self._disk_bytes + self.reserved_bytes + len(rec) > self.max_bytes:
            self._drop(seq)
            return False
        if self._sizes[self._wseg] and self._sizes[self._wseg] + len(rec) > self.segment_bytes:
            self._roll()
        self._wfile.write(rec)
        self._sizes[self._wseg] += len(rec)
        self._disk_bytes += len(rec)
        self.messages += 1
        self._unread += 1
        self._last_drop_seq = None
        return True

    def _drop(self, seq: int | None) -> None:
        self.dropped += 1
        if seq is None:
            return
        if self.lost_ranges and self._last_drop_seq is not None and seq == self._last_drop_seq + 1:
            self.lost_ranges[-1] = (self.lost_ranges[-1][0], seq)
        else:
            self.lost_ranges.append((seq, seq))
        self._last_drop_seq = seq

    def _roll(self) -> None:
        self._wfile.flush()
        os.fsync(self._wfile.fileno())
        self._wfile.close()
        self._wseg += 1
        self._sizes[self._wseg] = 0
        self._wfile = open(self._path(self._wseg), "ab")  # noqa: SIM115

    # -- reading -------------------------------------------------------------
    def read(self, max_records: int) -> list[SpoolRecord]:
        """Hand out up to ``max_records`` records in FIFO order (each once per process)."""
        out: list[SpoolRecord] = []
        if not self._unread:
            return out
        self._wfile.flush()
        while len(out) < max_records and self._unread:
            seg, off = self._rpos
            size = self._sizes.get(seg, 0)
            if off >= size:
                if seg >= self._wseg:
                    break
                self._rpos = (self._next_seg(seg), 0)
                continue
            f = self._reader(seg)
            f.seek(off)
            buf = f.read(min(size - off, _READ_CHUNK))  # whole records up to the chunk end
            pos = 0
            token = self._next_token
            ends = self._ends
            topics = self._topic_names
            want = max_records - len(out)
            n = 0
            while n < want and pos + _FULL.size <= len(buf):
                blen, _crc, seq, flags, tlen, klen = _FULL.unpack_from(buf, pos)
                end = pos + _PREFIX.size + blen
                if end > len(buf):
                    if pos == 0:  # one record larger than the chunk
                        buf += f.read(end - len(buf))
                    else:
                        break
                p = pos + _FULL.size
                tb = buf[p:p + tlen]
                topic = topics.get(tb)
                if topic is None:
                    topic = topics[tb] = tb.decode()
                p += tlen
                out.append(SpoolRecord(topic, None if flags & _KEY_NONE else buf[p:p + klen],
                                       None if flags & _VALUE_NONE else buf[p + klen:end],
                                       None if seq < 0 else seq, token + n))
                ends.append((seg, off + end))
                n += 1
                pos = end
            self._next_token += n
            self._unread -= n
            self._rpos = (seg, off + pos)
        return out

    def ack(self, token: int) -> None:
        """Mark one handed-out record delivered; the commit point moves over the acked prefix."""
        self._acked.add(token)
        moved = False
        while self._base in self._acked:
            self._acked.discard(self._base)
            self._commit = self._ends.popleft()
            self._base += 1
            self.messages -= 1
            moved = True
        if moved:
            self._dirty_commit = True
            cseg, coff = self._commit
            if cseg != self._released_upto or coff >= self._sizes.get(cseg, 0):
                self._release()
                self._released_upto = cseg

    def _release(self) -> None:
        """Delete segments whose every record is acknowledged."""
        cseg, coff = self._commit
        for seg in sorted(self._sizes):
            done = seg < cseg or (seg == cseg and coff >= self._sizes[seg] and seg != self._wseg)
            if not done:
                break
            if self._rfile is not None and self._rfile[0] == seg:
                self._rfile[1].close()  # type: ignore[attr-defined]
                self._rfile = None
            self._path(seg).unlink(missing_ok=True)
            self._disk_bytes -= self._sizes.pop(seg)

    # -- durability ----------------------------------------------------------
    def sync(self, force: bool = False) -> None:
        """Give buffered records to the OS (call it every poll); fsync the data and the
        commit point at most every ``fsync_interval``, not per record, since the spool
        is the hot path during an outage. A lagging commit point re-sends after a crash,
        it never loses."""
        self._wfile.flush()
        now = time.monotonic()
        if force or now - self._last_fsync >= self.fsync_interval:
            os.fsync(self._wfile.fileno())
            if self._dirty_commit:
                tmp = self.dir / "commit.tmp"
                with open(tmp, "wb") as f:
                    f.write(_COMMIT.pack(*self._commit))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.dir / "commit")
                self._dirty_commit = False
            self._last_fsync = now

    def close(self) -> None:
        """Persist everything; unacknowledged records are read again after a restart."""
        self.sync(force=True)
        self._wfile.close()
        if self._rfile is not None:
            self._rfile[1].close()  # type: ignore[attr-defined]
            self._rfile = None
        if self._sizes.get(self._wseg) == 0:
            self._path(self._wseg).unlink(missing_ok=True)

    # -- internals -----------------------------------------------------------
    def _path(self, seg: int) -> Path:
        return self.dir / f"{seg:020d}{_SUFFIX}"

    def _first(self) -> int:
        return min(self._sizes)

    def _next_seg(self, seg: int) -> int:
        return min(s for s in self._sizes if s > seg)

    def _reader(self, seg: int):
        if self._rfile is None or self._rfile[0] != seg:
            if self._rfile is not None:
                self._rfile[1].close()  # type: ignore[attr-defined]
            self._rfile = (seg, open(self._path(seg), "rb"))  # noqa: SIM115
        return self._rfile[1]

    def _load_commit(self) -> tuple[int, int]:
        try:
            seg, off = _COMMIT.unpack((self.dir / "commit").read_bytes())
            return seg, off
        except (OSError, struct.error):
            return 0, 0

    def _recover(self) -> int:
        """Find segments at or after the commit point, cut torn tails, count records."""
        cseg, coff = self._commit
        count = 0
        for path in sorted(self.dir.glob(f"*{_SUFFIX}")):
            seg = int(path.stem)
            if seg < cseg:
                path.unlink()
                continue
            data = path.read_bytes()
            off, good = 0, 0
            while off + _PREFIX.size <= len(data):
                blen, crc = _PREFIX.unpack_from(data, off)
                end = off + _PREFIX.size + blen
                if end > len(data) or zlib.crc32(data[off + _PREFIX.size:end]) != crc:
                    break
                if seg > cseg or off >= coff:
                    count += 1
                off = good = end
            if good < len(data):
                log.warning("spool segment %s: cut %d bytes of a torn or corrupt tail",
                            path.name, len(data) - good)
                with open(path, "r+b") as f:
                    f.truncate(good)
            self._sizes[seg] = good
        if cseg not in self._sizes:
            self._commit = (min(self._sizes, default=cseg), 0)
        return count
