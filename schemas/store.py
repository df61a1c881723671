"""The schemas of every topic, and every writer version this reader can resolve.

A reader of single-object encoded data learns the writer schema only from its
fingerprint, so the store keeps, per fingerprint, the writer schema and the
current reader schema of the same full name; schema resolution (fastavro) then
fills fields added since with their defaults. Earlier versions of the packaged
schemas (``older/<name>.<n>.avsc``) are known from the start, so recordings,
spools and topics written before an upgrade stay readable without a registry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from eunomia.schemas.errors import IncompatibleSchema, UnknownSchema

__all__ = ["SCHEMA_NAMES", "SchemaStore", "WriterVersion", "default_store", "schema_fingerprint"]

# Short names (the .avsc file stems) used throughout the code base.
SCHEMA_NAMES = (
    "raw_event",
    "syscall_counts",
    "container",
    "producer_health",
    "enriched_event",
    "alert",
    "seccomp_profile",
    "dead_letter",
)


def schema_fingerprint(parsed: dict[str, Any] | str) -> bytes:
    """CRC-64-AVRO of the parsing canonical form, as the 8 little-endian bytes
    the single-object encoding puts on the wire."""
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))


@dataclass(frozen=True)
class WriterVersion:
    """One known writer schema and the reader schema its data resolves to."""

    name: str  # short name of the current schema it resolves to
    writer: Any
    reader: Any | None  # None when the writer is the current schema (no resolution)
    raw_json: str


class SchemaStore:
    """Current schemas by short name; known writer versions by fingerprint."""

    def __init__(self, directory: Path | None = None) -> None:
        self._current: dict[str, Any] = {}
        self._json: dict[str, str] = {}
        self._fp: dict[str, bytes] = {}
        self._by_fullname: dict[str, str] = {}
        self._writers: dict[bytes, WriterVersion] = {}
        for name in SCHEMA_NAMES:
            text = _read_schema_text(name, directory)
            parsed = parse_schema(json.loads(text))
            self._current[name] = parsed
            self._json[name] = text
            fp = schema_fingerprint(parsed)
            self._fp[name] = fp
            self._by_fullname[parsed["name"]] = name
            self._writers[fp] = WriterVersion(name, parsed, None, text)
        if directory is None:
            for older in sorted(resources.files("eunomia.schemas").joinpath("older").iterdir()):
                if older.name.endswith(".avsc"):
                    self.add_writer(older.read_text())

    def parsed(self, name: str) -> Any:
        try:
            return self._current[name]
        except KeyError:
            raise UnknownSchema(f"no schema named {name!r}; known: {', '.join(SCHEMA_NAMES)}") from None

    def schema_json(self, name: str) -> str:
        self.parsed(name)
        return self._json[name]

    def fingerprint(self, name: str) -> bytes:
        self.parsed(name)
        return self._fp[name]

    def name_of_fullname(self, fullname: str) -> str:
        try:
            return self._by_fullname[fullname]
        except KeyError:
            raise UnknownSchema(f"no current schema for record {fullname!r}") from None

    def add_writer(self, schema: dict[str, Any] | str) -> WriterVersion:
        """Make an older (or other) writer version of a known record decodable.

        Raises IncompatibleSchema when its data could not resolve to the current
        reader schema (a field without default removed from the writer, a type
        that cannot be promoted).
        """
        raw = schema if isinstance(schema, str) else json.dumps(schema)
        writer = parse_schema(json.loads(raw))
        fp = schema_fingerprint(writer)
        if fp in self._writers:
            return self._writers[fp]
        name = self.name_of_fullname(writer["name"])
        reader = self._current[name]
        _check_resolvable(writer, reader, name)
        version = WriterVersion(name, writer, reader, raw)
        self._writers[fp] = version
        return version

    def writer(self, fp: bytes) -> WriterVersion:
        try:
            return self._writers[fp]
        except KeyError:
            raise UnknownSchema(
                f"unknown schema fingerprint {fp.hex()} (CRC-64-AVRO): the writer used a schema"
                " this reader was never given"
            ) from None


def _read_schema_text(name: str, directory: Path | None) -> str:
    if directory is not None:
        return (directory / f"{name}.avsc").read_text()
    return resources.files("eunomia.schemas").joinpath(f"{name}.avsc").read_text()


def _check_resolvable(writer: Any, reader: Any, name: str) -> None:
    """Reader fields missing from the writer need defaults (Avro's rule for
    backward compatibility); checked up front so a bad writer is refused once,
    not on every message."""
    wfields = {f["name"] for f in writer.get("fields", [])}
    for f in reader.get("fields", []):
        if f["name"] not in wfields and "default" not in f:
            raise IncompatibleSchema(
                f"writer schema of {name} lacks field {f['name']!r}, which has no default in"
                " the current schema"
            )


_DEFAULT: SchemaStore | None = None


def default_store() -> SchemaStore:
    """The packaged schemas, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = SchemaStore()
    return _DEFAULT
