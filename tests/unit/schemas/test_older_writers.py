"""Data written with an earlier packaged schema version (schemas/older) stays
readable: the store knows each such writer and resolves it to the current one."""

from __future__ import annotations

import json
from importlib import resources

import pytest
from fastavro import parse_schema

from eunomia.schemas import SchemaStore
from eunomia.schemas.store import schema_fingerprint

OLDER = sorted(p for p in resources.files("eunomia.schemas").joinpath("older").iterdir()
               if p.name.endswith(".avsc"))


def test_there_are_older_versions() -> None:
    assert OLDER


@pytest.mark.parametrize("path", OLDER, ids=lambda p: p.name)
def test_an_older_writer_resolves_to_the_current_schema(path) -> None:
    store = SchemaStore()
    parsed = parse_schema(json.loads(path.read_text()))
    version = store.writer(schema_fingerprint(parsed))
    assert version.name == path.name.split(".")[0]
    assert version.reader is not None  # resolved, not the current schema itself
