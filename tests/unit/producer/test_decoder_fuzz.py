"""Fuzzing the ring-buffer decoder: whatever bytes the kernel side hands it
(a bug there, a layout mismatch, a truncated record), the decoder either
returns a record that fits the raw_event schema or raises DecodeError; it
never crashes the agent's loop with anything else."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from eunomia.producer.decoder import KINDS, DecodeError, Decoder
from eunomia.producer.layout import parse_structs
from eunomia.schemas import AvroCodec, CodecError

LAYS = parse_structs()
HDR = LAYS["ev_hdr"]
DEC = Decoder("host-f", "boot-f", cgroup_path=lambda _cg: None)
CODEC = AvroCodec()
BIGGEST = max(lay.size for lay in LAYS.values())


def _check(buf: bytes) -> None:
    try:
        rec = DEC.decode(buf)
    except DecodeError:
        return
    rec["seq"] = 1
    try:
        CODEC.encode("raw_event", rec)
    except CodecError as exc:  # the agent counts these as encode drops
        assert "does not fit" in str(exc)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=BIGGEST + 64))
def test_random_bytes(buf: bytes) -> None:
    _check(buf)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(sorted(KINDS)), body=st.binary(min_size=0, max_size=BIGGEST),
       cut=st.integers(min_value=0, max_value=BIGGEST))
def test_a_valid_kind_with_random_contents_and_length(kind: int, body: bytes, cut: int) -> None:
    """The header says a known kind; everything else (sizes, lengths,
    strings without NUL, invalid UTF-8) is random, and the record may be cut."""
    buf = bytearray(body.ljust(BIGGEST, b"\0"))
    struct.pack_into("<H", buf, HDR.offset("kind"), kind)
    _check(bytes(buf[:max(cut, 0)]))
