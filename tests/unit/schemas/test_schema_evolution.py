"""Schemas evolve only compatibly: data written with the previous version of a
schema (kept in tests/data/schemas/previous) still reads with the current one,
and no field of the previous version disappeared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro import parse_schema

from eunomia.schemas import AvroCodec, IncompatibleSchema, SchemaStore
from tests.avro_samples import samples

PREVIOUS = Path(__file__).resolve().parents[2] / "data" / "schemas" / "previous"
PREVIOUS_NAMES = sorted(p.stem for p in PREVIOUS.glob("*.avsc"))


def _fields(schema: dict) -> dict[str, dict]:
    """All record fields by dotted path (record name + field name)."""
    out: dict[str, dict] = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "record":
                for f in node["fields"]:
                    out[f"{node['name']}.{f['name']}"] = f
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return out


def test_there_are_previous_versions() -> None:
    assert len(PREVIOUS_NAMES) >= 5


@pytest.mark.parametrize("name", PREVIOUS_NAMES)
def test_previous_version_data_reads_with_current(name: str) -> None:
    old_json = json.loads((PREVIOUS / f"{name}.avsc").read_text())
    store = SchemaStore()
    # The old writer only as the store knows it: registered, not current.
    old = parse_schema(old_json)
    writer_codec = AvroCodec(store=_store_with_current(old_json, name))
    reader = AvroCodec(store=store)
    store.add_writer(old_json)
    current_fields = _fields(json.loads(store.schema_json(name)))
    old_fields = _fields(old_json)
    for record in samples(old):
        data = writer_codec.encode(name, record)
        got = reader.decode(data, expect=name)
        for key, value in record.items():
            if isinstance(value, dict) and isinstance(got[key], dict):
                for k2, v2 in value.items():
                    assert got[key][k2] == v2, (key, k2)
            else:
                assert got[key] == value, key
        added = set(current_fields) - set(old_fields)
        assert added, f"{name}: previous version equals current; nothing to evolve"


@pytest.mark.parametrize("name", PREVIOUS_NAMES)
def test_no_field_removed_and_new_fields_have_defaults(name: str) -> None:
    old = _fields(json.loads((PREVIOUS / f"{name}.avsc").read_text()))
    new = _fields(json.loads(SchemaStore().schema_json(name)))
    assert not set(old) - set(new), f"fields removed: {sorted(set(old) - set(new))}"
    for key in set(new) - set(old):
        record = key.split(".")[0]
        if any(k.startswith(record + ".") for k in old):  # record existed: new field needs default
            assert "default" in new[key], f"{key} added without a default"


def test_incompatible_writer_is_refused_up_front() -> None:
    store = SchemaStore()
    bad = json.loads(store.schema_json("alert"))
    bad["fields"] = [f for f in bad["fields"] if f["name"] != "alert_id"]
    with pytest.raises(IncompatibleSchema, match="lacks field 'alert_id'"):
        store.add_writer(bad)


def _store_with_current(schema_json: dict, name: str) -> SchemaStore:
    """A store whose *current* version of ``name`` is the old one: it plays the
    old producer that wrote the data."""
    import tempfile

    cur = SchemaStore()
    tmp = Path(tempfile.mkdtemp())
    for n in ("raw_event", "syscall_counts", "container", "producer_health", "enriched_event",
              "alert", "seccomp_profile", "dead_letter"):
        text = json.dumps(schema_json) if n == name else cur.schema_json(n)
        (tmp / f"{n}.avsc").write_text(text)
    return SchemaStore(tmp)
