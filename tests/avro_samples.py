"""Records that fill every field of a schema with a non-default value.

Built from the schema itself, so a field added later is covered without editing
the tests; ``variant`` picks a different branch of each union, so iterating
variants exercises every payload record.
"""

from __future__ import annotations

from typing import Any


def sample(schema: Any, variant: int = 0, named: dict[str, Any] | None = None) -> Any:
    named = {} if named is None else named
    if isinstance(schema, list):  # union: prefer a non-null branch
        branches = [b for b in schema if b != "null"] or schema
        return sample(branches[variant % len(branches)], variant, named)
    if isinstance(schema, str):
        if schema in named:
            return sample(named[schema], variant, named)
        return _primitive(schema, variant)
    t = schema["type"]
    if t == "record":
        named[schema["name"]] = schema
        return {f["name"]: sample(f["type"], variant + i, named)
                for i, f in enumerate(schema["fields"])}
    if t == "array":
        return [sample(schema["items"], variant + i, named) for i in range(2)]
    if t == "map":
        return {f"k{i}": sample(schema["values"], variant + i, named) for i in range(2)}
    if t == "enum":
        return schema["symbols"][variant % len(schema["symbols"])]
    if t == "fixed":
        return bytes([variant % 256]) * schema["size"]
    return _primitive(t, variant)


def _primitive(t: str, variant: int) -> Any:
    return {
        "string": f"s{variant}-\u00e9",
        "int": 1000 + variant,
        "long": 2**40 + variant,
        "boolean": variant % 2 == 1,
        "bytes": bytes(range(variant % 7 + 1)),
        "float": 1.5,
        "double": 2.25,
        "null": None,
    }[t]


def union_width(schema: Any) -> int:
    """How many variants it takes to reach every branch of the widest union."""
    if isinstance(schema, list):
        return max(len(schema), *(union_width(b) for b in schema))
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            return max([1, *(union_width(f["type"]) for f in schema["fields"])])
        if schema.get("type") == "array":
            return union_width(schema["items"])
        if schema.get("type") == "map":
            return union_width(schema["values"])
    return 1


def samples(parsed: Any) -> list[dict[str, Any]]:
    return [sample(parsed, v) for v in range(max(2, union_width(parsed)))]
