"""The codec's framing and its typed errors: each way a message can be bad
raises one CodecError subclass with a message that says what was wrong."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eunomia.schemas import (
    SCHEMA_NAMES,
    AvroCodec,
    BadMagic,
    CodecError,
    SchemaMismatch,
    TruncatedMessage,
    UnknownSchema,
)
from tests.avro_samples import samples

codec = AvroCodec()


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_round_trips_field_by_field(name: str) -> None:
    for record in samples(codec.store.parsed(name)):
        data = codec.encode(name, record)
        assert data[:2] == b"\xc3\x01"
        assert data[2:10] == codec.store.fingerprint(name)
        got_name, got = codec.decode_named(data)
        assert got_name == name
        for field, value in record.items():
            assert got[field] == value, field


def _alert() -> bytes:
    return codec.encode("alert", samples(codec.store.parsed("alert"))[0])


def test_truncated_header() -> None:
    with pytest.raises(TruncatedMessage, match="single-object header needs 10 bytes, got 5"):
        codec.decode(_alert()[:5])


def test_truncated_body() -> None:
    data = _alert()
    with pytest.raises(TruncatedMessage, match="alert body ends early"):
        codec.decode(data[: len(data) // 2])


def test_empty_message() -> None:
    with pytest.raises(TruncatedMessage, match="empty message"):
        codec.decode(b"")


def test_wrong_magic_byte() -> None:
    with pytest.raises(BadMagic, match="unknown framing byte 0x7b"):
        codec.decode(b'{"json": true}')


def test_wrong_second_marker_byte() -> None:
    data = bytearray(_alert())
    data[1] = 0x02
    with pytest.raises(BadMagic, match="bad single-object marker c302"):
        codec.decode(bytes(data))


def test_unknown_fingerprint_names_it() -> None:
    data = b"\xc3\x01" + bytes(range(8)) + b"\x00"
    with pytest.raises(UnknownSchema, match="unknown schema fingerprint 0001020304050607"):
        codec.decode(data)


def test_confluent_frame_without_registry_names_the_problem() -> None:
    with pytest.raises(UnknownSchema, match="schema id 7, but no schema registry is configured"):
        codec.decode(b"\x00\x00\x00\x00\x07\x02")


def test_wrong_schema_for_topic() -> None:
    with pytest.raises(UnknownSchema, match="message is a alert, expected a raw_event"):
        codec.decode(_alert(), expect="raw_event")


def test_trailing_garbage() -> None:
    with pytest.raises(SchemaMismatch, match="trailing bytes"):
        codec.decode(_alert() + b"\x01\x02")


def test_encode_rejects_a_record_that_does_not_fit() -> None:
    with pytest.raises(SchemaMismatch, match="record does not fit schema alert"):
        codec.encode("alert", {"alert_id": 5})


def test_unknown_schema_name() -> None:
    with pytest.raises(UnknownSchema, match="no schema named 'nope'"):
        codec.encode("nope", {})


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_only_raise_codec_errors(data: bytes) -> None:
    try:
        codec.decode(data)
    except CodecError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(SCHEMA_NAMES), st.binary(max_size=200), st.integers(0, 9))
def test_fuzz_valid_header_garbage_body(name: str, body: bytes, variant: int) -> None:
    """The hard case for a decoder: a known fingerprint followed by junk."""
    data = b"\xc3\x01" + codec.store.fingerprint(name) + body
    try:
        codec.decode(data)
    except CodecError:
        pass
