"""The recording file: an Avro Object Container File of Kafka messages.

Each record keeps what a consumer saw (topic, partition, offset, timestamp, key,
value bytes, headers), so any topic records and replays byte for byte, and a
CRC-32 of key and value, since Avro OCF checks nothing itself: corruption raises
``CorruptRecording`` naming block and offset, or with ``skip_corrupt`` is
skipped to the next sync marker, whole blocks only.
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import fastavro

from eunomia.errors import EunomiaError

__all__ = [
    "FORMAT",
    "RECORD_SCHEMA",
    "CorruptRecording",
    "RecordedMessage",
    "RecordingError",
    "RecordingReader",
    "RecordingWriter",
    "SkippedBlock",
    "read_recording",
]

FORMAT = "eunomia-recording/1"
SYNC_SIZE = 16
CODECS = ("zstandard", "deflate", "null")

RECORD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "RecordedMessage",
    "namespace": "io.eunomia.recording",
    "doc": "One Kafka message as a consumer saw it.",
    "fields": [
        {"name": "topic", "type": "string"},
        {"name": "partition", "type": "int"},
        {"name": "offset", "type": "long"},
        {"name": "timestamp_ms", "type": "long", "doc": "Kafka message timestamp"},
        {"name": "timestamp_type", "type": "int", "default": 1,
         "doc": "0 none, 1 create time, 2 log append time (librdkafka TIMESTAMP_*)"},
        {"name": "key", "type": ["null", "bytes"], "default": None},
        {"name": "value", "type": ["null", "bytes"], "default": None},
        {"name": "headers", "default": [], "type": {"type": "array", "items": {
            "type": "record", "name": "Header", "fields": [
                {"name": "key", "type": "string"},
                {"name": "value", "type": ["null", "bytes"], "default": None}]}}},
        {"name": "crc32", "type": "long", "doc": "zlib CRC-32 of key then value"},
    ],
}
_PARSED = fastavro.parse_schema(RECORD_SCHEMA)


class RecordingError(EunomiaError):
    """A recording cannot be opened or written."""


class CorruptRecording(RecordingError):
    """Part of a recording is damaged; ``block`` and ``offset`` say where."""

    def __init__(self, path: str, block: int, offset: int, reason: str) -> None:
        self.path, self.block, self.offset, self.reason = path, block, offset, reason
        super().__init__(f"{path}: corrupt recording at block {block} (byte {offset}): {reason}"
                         " (use --skip-corrupt to replay the readable part)")


Header = tuple[str, bytes | None]


@dataclass(slots=True)
class RecordedMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
    key: bytes | None = None
    headers: list[Header] = field(default_factory=list)
    timestamp_type: int = 1


@dataclass(frozen=True)
class SkippedBlock:
    """A damaged stretch the reader skipped: from ``offset`` up to ``resumed_at``."""

    block: int
    offset: int
    resumed_at: int | None
    reason: str


def _crc(key: bytes | None, value: bytes | None) -> int:
    return zlib.crc32(value or b"", zlib.crc32(key or b""))


class RecordingWriter:
    """Appends messages to a new OCF file; ``close()`` (or the context manager)
    flushes the last block so an interrupted recording stays readable."""

    def __init__(self, path: str | os.PathLike[str], topics: Iterable[str] = (),
                 codec: str = "zstandard", logical: dict[str, str] | None = None,
                 sync_interval: int = 64 * 1024) -> None:
        if codec not in CODECS:
            raise RecordingError(f"unknown codec {codec!r}; use one of {', '.join(CODECS)}")
        self.path = Path(path)
        self.count = 0
        self.bytes_in = 0
        meta = {
            "eunomia.format": FORMAT,
            "eunomia.created": datetime.now(UTC).isoformat(timespec="seconds"),
            "eunomia.topics": json.dumps(sorted(topics)),
            "eunomia.logical_topics": json.dumps(logical or {}, sort_keys=True),
        }
        try:
            self._fo: BinaryIO = self.path.open("wb")
        except OSError as exc:
            raise RecordingError(f"cannot write {path}: {exc.strerror}") from None
        try:
            self._writer = fastavro.write.Writer(self._fo, _PARSED, codec=codec,
                                                 sync_interval=sync_interval, metadata=meta)
        except ValueError as exc:  # codec library missing
            self._fo.close()
            raise RecordingError(str(exc)) from None

    def write(self, msg: RecordedMessage) -> None:
        self._writer.write({
            "topic": msg.topic, "partition": msg.partition, "offset": msg.offset,
            "timestamp_ms": msg.timestamp_ms, "timestamp_type": msg.timestamp_type,
            "key": msg.key, "value": msg.value,
            "headers": [{"key": k, "value": v} for k, v in msg.headers],
            "crc32": _crc(msg.key, msg.value),
        })
        self.count += 1
        self.bytes_in += len(msg.value or b"") + len(msg.key or b"")

    def flush(self) -> None:
        self._writer.flush()
        self._fo.flush()

    def close(self) -> None:
        if not self._fo.closed:
            self._writer.flush()
            self._fo.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_varlong(fo: BinaryIO) -> int | None:
    """Avro zig-zag varint; None at a clean end of file."""
    shift = result = 0
    while True:
        b = fo.read(1)
        if not b:
            if shift == 0:
                return None
            raise EOFError("file ends inside a block header")
        result |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return (result >> 1) ^ -(result & 1)
        shift += 7
        if shift > 63:
            raise ValueError("block header varint is too long")


class RecordingReader:
    """Reads a recording block by block.

    ``skip_corrupt``: a damaged block is reported to ``on_skip`` and skipped;
    otherwise the first damage raises ``CorruptRecording``.
    """

    def __init__(self, path: str | os.PathLike[str], skip_corrupt: bool = False,
                 on_skip: Callable[[SkippedBlock], None] | None = None) -> None:
        self.path = str(path)
        self.skip_corrupt = skip_corrupt
        self.skipped: list[SkippedBlock] = []
        self._on_skip = on_skip
        try:
            self.size = os.path.getsize(self.path)
            with open(self.path, "rb") as fo:
                reader = fastavro.block_reader(fo)
                self.header_end = fo.tell()
                self.sync: bytes = reader._header["sync"]
                self.metadata: dict[str, str] = dict(reader.metadata)
                self.codec: str = reader.codec
                fo.seek(0)
                self._header_bytes = fo.read(self.header_end)
        except OSError as exc:
            raise RecordingError(f"cannot read {path}: {exc.strerror}") from None
        except Exception as exc:  # fastavro: bad magic, truncated header, ...
            raise CorruptRecording(self.path, 0, 0, f"not an Avro container file header ({exc})") from None
        if self.metadata.get("eunomia.format") != FORMAT:
            raise RecordingError(f"{path}: not an eunomia recording (format "
                                 f"{self.metadata.get('eunomia.format')!r}, expected {FORMAT!r})")

    @property
    def topics(self) -> list[str]:
        return json.loads(self.metadata.get("eunomia.topics", "[]"))

    @property
    def logical_topics(self) -> dict[str, str]:
        """Full topic name -> logical name (``raw.events``) at recording time."""
        return json.loads(self.metadata.get("eunomia.logical_topics", "{}"))

    def scan(self) -> int:
        """Walk the block framing (sizes and sync markers) without decoding: a
        cheap check for truncation and structural damage before anything is
        replayed. Returns the number of records the framing announces."""
        total = 0
        with open(self.path, "rb") as fo:
            fo.seek(self.header_end)
            block = 0
            while True:
                start = fo.tell()
                try:
                    count = _read_varlong(fo)
                    if count is None:
                        return total
                    size = _read_varlong(fo)
                    if count < 0 or size is None or size < 0:
                        raise ValueError(f"impossible block header (count {count}, size {size})")
                    if start + size > self.size:
                        raise EOFError(f"block of {size} bytes runs past the end of the file "
                                       f"({self.size - start} bytes left): truncated")
                    fo.seek(size, io.SEEK_CUR)
                    if fo.read(SYNC_SIZE) != self.sync:
                        raise ValueError("sync marker missing after the block")
                except (EOFError, ValueError) as exc:
                    self._damaged(block, start, str(exc), None)
                    return total
                total += count
                block += 1

    def __iter__(self) -> Iterator[RecordedMessage]:
        for batch in self.blocks():
            yield from batch

    def blocks(self) -> Iterator[list[RecordedMessage]]:
        """Decoded blocks, in file order."""
        return self._blocks(_message)

    def raw_blocks(self) -> Iterator[list[dict[str, Any]]]:
        """Blocks as fastavro's dicts (CRC-checked): the fast path of replay."""
        return self._blocks(_checked)

    def _blocks(self, convert: Callable[[dict[str, Any]], Any]) -> Iterator[list[Any]]:
        block = 0
        resume = self.header_end
        with open(self.path, "rb") as raw:
            while resume is not None:
                fo, base = self._stream_from(raw, resume)
                reader = fastavro.block_reader(fo)
                start = resume
                resume = None
                it = iter(reader)
                while True:
                    try:
                        blk = next(it)
                    except StopIteration:
                        break
                    except Exception as exc:
                        resume = self._damaged(block, start, _reason(exc, "block framing"), raw)
                        block += 1
                        break
                    start = base + blk.offset
                    try:
                        batch = [convert(r) for r in blk]
                    except Exception as exc:
                        resume = self._damaged(block, start, _reason(exc, "records"), raw)
                        block += 1
                        break
                    if len(batch) != blk.num_records:
                        resume = self._damaged(block, start, "record count mismatch", raw)
                        block += 1
                        break
                    yield batch
                    block += 1
                    start = base + blk.offset + blk.size

    def _stream_from(self, raw: BinaryIO, pos: int) -> tuple[BinaryIO, int]:
        """A stream fastavro can open at block position ``pos``: the original
        file at the first block, else the header followed by the rest of the
        file (only after damage, so the copy is rare). Returns it and the file
        offset its block offsets are relative to."""
        raw.seek(0)
        if pos == self.header_end:
            return raw, 0
        raw.seek(pos)
        return io.BytesIO(self._header_bytes + raw.read()), pos - self.header_end

    def _damaged(self, block: int, offset: int, reason: str, raw: BinaryIO | None) -> int | None:
        """Raise, or record the skip and return where reading resumes."""
        if not self.skip_corrupt:
            raise CorruptRecording(self.path, block, offset, reason)
        resume = None
        if raw is not None:
            resume = self._resync(raw, offset)
        skip = SkippedBlock(block, offset, resume, reason)
        self.skipped.append(skip)
        if self._on_skip:
            self._on_skip(skip)
        return resume


    def _block_end(self, raw: BinaryIO, offset: int) -> int | None:
        """End of the block at ``offset`` per its own header, if that header
        parses and the block fits in the file."""
        raw.seek(offset)
        try:
            count, size = _read_varlong(raw), _read_varlong(raw)
        except (EOFError, ValueError):
            return None
        if count is None or size is None or count < 0 or size < 0:
            return None
        end = raw.tell() + size + SYNC_SIZE
        return end if end <= self.size else None

    def _resync(self, raw: BinaryIO, offset: int) -> int | None:
        """Where the next good block starts: right after the damaged one when
        its header is intact and the following block checks out (so a mangled
        sync marker costs one block, not two); else after the next sync marker."""
        end = self._block_end(raw, offset)
        if end is not None and end < self.size:
            nxt = self._block_end(raw, end)
            if nxt is not None:
                raw.seek(nxt - SYNC_SIZE)
                if raw.read(SYNC_SIZE) == self.sync:
                    return end
        raw.seek(offset + 1)
        data = raw.read()
        i = data.find(self.sync)
        if i < 0:
            return None
        resume = offset + 1 + i + SYNC_SIZE
        return resume if resume < self.size else None


def _reason(exc: Exception, where: str) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "sync marker" in text:
        return f"{where}: {text} (truncated or overwritten)"
    return f"{where}: {type(exc).__name__}: {text}"


def _checked(r: dict[str, Any]) -> dict[str, Any]:
    if _crc(r["key"], r["value"]) != r["crc32"]:
        raise ValueError(f"CRC mismatch in message {r['topic']}[{r['partition']}]@{r['offset']}")
    return r


def _message(r: dict[str, Any]) -> RecordedMessage:
    key, value = r["key"], r["value"]
    if _crc(key, value) != r["crc32"]:
        raise ValueError(f"CRC mismatch in message {r['topic']}[{r['partition']}]@{r['offset']}")
    return RecordedMessage(r["topic"], r["partition"], r["offset"], r["timestamp_ms"], value, key,
                           [(h["key"], h["value"]) for h in r["headers"]], r["timestamp_type"])


def read_recording(path: str | os.PathLike[str], skip_corrupt: bool = False) -> Iterator[RecordedMessage]:
    """Every readable message of a recording, in recorded order."""
    return iter(RecordingReader(path, skip_corrupt=skip_corrupt))
