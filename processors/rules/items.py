"""A rule file's items as the loader reads them and the builder consumes them:
the item with its YAML nodes, condition parsing at a file position, and the
fingerprint that ties saved state to one version of a rule."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import yaml

from eunomia.processors.rules.condition import Node, parse_condition
from eunomia.processors.rules.errors import Diagnostic, RuleSyntaxError
from eunomia.processors.rules.yamlpos import Source

__all__ = ["Item", "fingerprint", "parse_at"]


@dataclass
class Item:
    """One mapping item of a rule file with its key and value nodes."""

    source: Source
    node: yaml.MappingNode
    keys: dict[str, yaml.Node]
    key_nodes: dict[str, yaml.Node]



def parse_at(source: Source, node: yaml.ScalarNode, out: list[Diagnostic]) -> Node | None:
    """Parse a condition scalar; a syntax error becomes an E010 at its file position."""
    try:
        return parse_condition(str(node.value))
    except RuleSyntaxError as exc:
        text = str(node.value)
        lines = text.split("\n")
        offset = sum(len(s) + 1 for s in lines[: exc.line - 1]) + exc.column - 1
        out.append(source.in_scalar("E010", node, offset, detail=exc.detail))
        return None


def fingerprint(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
