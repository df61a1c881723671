"""The recording file: round trip, and damage reported with its position or
skipped block by block, never replayed as garbage."""

from __future__ import annotations

import io
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eunomia.processors.replay.recording import (
    CorruptRecording,
    RecordedMessage,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    read_recording,
)


def _messages(n: int) -> list[RecordedMessage]:
    out = []
    for i in range(n):
        key = None if i % 7 == 0 else f"host-{i % 3}".encode()
        value = None if i % 11 == 5 else bytes([i % 256]) * (50 + i % 40) + f"#{i}".encode()
        headers = [("eunomia.origin", b"x"), ("empty", None)] if i % 2 else []
        out.append(RecordedMessage("eunomia.raw.events", i % 3, i // 3, 1_700_000_000_000 + i,
                                   value, key, headers, 1))
    return out


def _write(path: Path, msgs: list[RecordedMessage], codec: str = "zstandard",
           sync_interval: int = 2000) -> None:
    with RecordingWriter(path, ["eunomia.raw.events"], codec=codec, sync_interval=sync_interval,
                         logical={"eunomia.raw.events": "raw.events"}) as w:
        for m in msgs:
            w.write(m)


@pytest.mark.parametrize("codec", ["zstandard", "deflate", "null"])
def test_round_trip_keeps_every_field_and_order(tmp_path: Path, codec: str) -> None:
    msgs = _messages(500)
    path = tmp_path / "r.avro"
    _write(path, msgs, codec)
    reader = RecordingReader(path)
    assert reader.codec == codec
    assert reader.topics == ["eunomia.raw.events"]
    assert reader.logical_topics == {"eunomia.raw.events": "raw.events"}
    assert reader.scan() == 500
    assert list(reader) == msgs
    raw = [r for b in RecordingReader(path).raw_blocks() for r in b]
    assert [(r["key"], r["value"]) for r in raw] == [(m.key, m.value) for m in msgs]


def test_the_file_is_a_standard_avro_container(tmp_path: Path) -> None:
    path = tmp_path / "r.avro"
    _write(path, _messages(20))
    with path.open("rb") as fo:
        records = list(fastavro.reader(fo))
    assert [r["offset"] for r in records] == [m.offset for m in _messages(20)]


def test_unknown_codec_and_foreign_files_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="unknown codec"):
        RecordingWriter(tmp_path / "x.avro", codec="rar")
    plain = tmp_path / "plain.avro"
    with plain.open("wb") as fo:
        fastavro.writer(fo, {"type": "record", "name": "A", "fields": [{"name": "a", "type": "int"}]},
                        [{"a": 1}])
    with pytest.raises(RecordingError, match="not an eunomia recording"):
        RecordingReader(plain)
    junk = tmp_path / "junk.avro"
    junk.write_bytes(b"PK\x03\x04 not avro at all")
    with pytest.raises(CorruptRecording, match=r"block 0 \(byte 0\)"):
        RecordingReader(junk)
    with pytest.raises(RecordingError, match="cannot read"):
        RecordingReader(tmp_path / "missing.avro")


def _blocks(path: Path) -> list[tuple[int, int, int]]:
    """(offset, size, records) of each block, read by fastavro itself."""
    with path.open("rb") as fo:
        return [(b.offset, b.size, b.num_records) for b in fastavro.block_reader(fo)]


def test_truncation_names_block_and_byte_and_skip_keeps_the_whole_blocks(tmp_path: Path) -> None:
    msgs = _messages(400)
    path = tmp_path / "r.avro"
    _write(path, msgs)
    blocks = _blocks(path)
    assert len(blocks) > 5
    off, size, _ = blocks[4]
    data = path.read_bytes()
    cut = tmp_path / "cut.avro"
    cut.write_bytes(data[: off + size // 2])
    with pytest.raises(CorruptRecording) as err:
        list(read_recording(cut))
    assert (err.value.block, err.value.offset) == (4, off)
    assert f"block 4 (byte {off})" in str(err.value)
    assert "\n" not in str(err.value)
    with pytest.raises(CorruptRecording, match="truncated"):
        RecordingReader(cut).scan()
    reader = RecordingReader(cut, skip_corrupt=True)
    got = list(reader)
    kept = sum(n for _, _, n in blocks[:4])
    assert got == msgs[:kept]
    assert [(s.block, s.offset, s.resumed_at) for s in reader.skipped] == [(4, off, None)]


@pytest.mark.parametrize("where", ["payload", "sync", "count"])
def test_damage_in_a_middle_block_skips_that_block_only(tmp_path: Path, where: str) -> None:
    msgs = _messages(400)
    path = tmp_path / "r.avro"
    _write(path, msgs, codec="null")
    blocks = _blocks(path)
    off, size, _ = blocks[3]
    data = bytearray(path.read_bytes())
    pos = {"payload": off + size // 2, "sync": off + size - 3, "count": off}[where]
    data[pos] ^= 0x5A
    bad = tmp_path / "bad.avro"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptRecording) as err:
        list(read_recording(bad))
    assert err.value.block == 3 and err.value.offset == off
    reader = RecordingReader(bad, skip_corrupt=True)
    got = list(reader)
    before = sum(n for _, _, n in blocks[:3])
    after = sum(n for _, _, n in blocks[4:])
    assert got == msgs[:before] + msgs[len(msgs) - after:]
    assert [s.block for s in reader.skipped] == [3]


def test_zstd_payload_damage_is_caught(tmp_path: Path) -> None:
    msgs = _messages(300)
    path = tmp_path / "r.avro"
    _write(path, msgs)
    off, size, _ = _blocks(path)[2]
    data = bytearray(path.read_bytes())
    for i in range(off + 8, off + size - 20, 7):  # many flips: any of them must be noticed
        data[i] ^= 0xFF
    bad = tmp_path / "bad.avro"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptRecording, match=f"block 2 \\(byte {off}\\)"):
        list(read_recording(bad))


_MSGS = _messages(120)
_BUF = io.BytesIO()


def _reference(tmp: Path) -> bytes:
    path = tmp / "ref.avro"
    _write(path, _MSGS, codec="deflate", sync_interval=600)
    return path.read_bytes()


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_truncation_reads_a_prefix_or_fails_typed(tmp_path_factory: pytest.TempPathFactory,
                                                      data: st.DataObject) -> None:
    tmp = tmp_path_factory.mktemp("trunc")
    full = _reference(tmp)
    header_end = RecordingReader(tmp / "ref.avro").header_end
    cut = data.draw(st.integers(min_value=header_end, max_value=len(full) - 1))
    path = tmp / "cut.avro"
    path.write_bytes(full[:cut])
    try:
        got = list(read_recording(path))
    except CorruptRecording as exc:
        assert exc.offset >= header_end
    else:  # cut exactly at a block boundary: a clean shorter file
        assert got == _MSGS[: len(got)]
    prefix = list(read_recording(path, skip_corrupt=True))
    assert prefix == _MSGS[: len(prefix)]
