"""An enriched event over the record limit: argv cut with a marker, largest first,
until it fits; None when it cannot fit at all."""

from __future__ import annotations

import json
from typing import Any

from eunomia.processors.enrich.oversize import fit_args


def encode(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec).encode()


def rec(args: list[str], parent_args: list[str], other: str = "") -> dict[str, Any]:
    return {"event": {"id": "e1"}, "other": other,
            "process": {"args": args, "parent": {"args": parent_args}}}


def test_a_record_within_the_limit_is_unchanged() -> None:
    r = rec(["ls", "-l"], ["sh"])
    assert fit_args(r, encode, 10_000) == (encode(r), 0)


def test_inherited_argv_is_cut_largest_first_with_a_marker() -> None:
    big = ["x" * 400_000, "y" * 500_000]
    r = rec(big, big)
    value, cut = fit_args(r, encode, 1_000_000)  # type: ignore[misc]
    assert len(value) <= 1_000_000 and cut > 800_000
    out = json.loads(value)
    assert r["process"]["args"] == big  # the input is not changed
    cut_lists = [a for a in (out["process"]["args"], out["process"]["parent"]["args"])
                 if a[-1].startswith("...[eunomia:")]
    assert cut_lists and "bytes of argv cut, over the 1000000-byte record limit" in cut_lists[0][-1]


def test_a_record_too_large_without_argv_does_not_fit() -> None:
    assert fit_args(rec(["a" * 5000], [], other="z" * 20_000), encode, 10_000) is None
