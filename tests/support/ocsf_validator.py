"""A validator of OCSF events over the compiled OCSF schema (the OCSF server's
export), for tests: required and unknown attributes, attributes of profiles the
event does not declare, types, enums, ranges, regexes, object constraints and
deprecated attributes. Integers beyond 2**53 are errors too: JSON readers that
parse numbers as doubles lose their low digits."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OcsfSchema", "Problem", "schema_path"]

SCHEMA_NAME = "ocsf/ocsf-schema-1.3.0.compiled.json"
JSON_SAFE = 2**53
INT_RANGE = {"integer_t": (-(2**31), 2**31 - 1), "long_t": (-(2**63), 2**63 - 1)}


def schema_path() -> Path | None:
    """``shared/thirdparty`` beside the project root (``../shared``) or above it
    (a worktree one level deeper); None when absent."""
    root = Path(__file__).resolve().parents[2]
    for up in root.parents:
        candidate = up / "shared" / "thirdparty" / SCHEMA_NAME
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Problem:
    kind: str  # "error" or "deprecated"
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.message}"


class OcsfSchema:
    """``validate(event)`` -> the problems of one event (empty when valid)."""

    def __init__(self, compiled: dict[str, Any]) -> None:
        self.version: str = compiled["version"]
        self.classes = {c["uid"]: c for c in compiled["classes"].values()}
        self.objects: dict[str, Any] = compiled["objects"]
        self.types: dict[str, Any] = compiled["dictionary"]["types"]["attributes"]
        self.profiles: set[str] = set(compiled["profiles"])

    @classmethod
    def load(cls, path: Path) -> OcsfSchema:
        return cls(json.loads(path.read_text()))

    def validate(self, event: dict[str, Any]) -> list[Problem]:
        out: list[Problem] = []
        cls = self.classes.get(event.get("class_uid"))  # type: ignore[arg-type]
        if cls is None:
            return [Problem("error", "class_uid", f"unknown class {event.get('class_uid')!r}")]
        declared = (event.get("metadata") or {}).get("profiles") or []
        for p in declared:
            if p not in self.profiles:
                out.append(Problem("error", "metadata.profiles", f"unknown profile {p!r}"))
            elif p not in cls.get("profiles", []):
                out.append(Problem("error", "metadata.profiles", f"profile {p!r} not in {cls['name']}"))
        version = (event.get("metadata") or {}).get("version")
        if version != self.version:
            out.append(Problem("error", "metadata.version", f"{version!r}, schema is {self.version}"))
        self._object(cls["attributes"], {}, event, "", set(declared), out)
        return out

    def _object(self, attrs: dict[str, Any], constraints: dict[str, Any], value: Any, path: str,
                profiles: set[str], out: list[Problem]) -> None:
        if not isinstance(value, dict):
            out.append(Problem("error", path or ".", f"expected an object, got {type(value).__name__}"))
            return
        for name, v in value.items():
            where = f"{path}.{name}" if path else name
            attr = attrs.get(name)
            if attr is None:
                out.append(Problem("error", where, "unknown attribute"))
                continue
            needs = attr.get("profiles")
            if needs and not profiles.intersection(needs):
                out.append(Problem("error", where, f"needs profile {' or '.join(needs)} in "
                                                   "metadata.profiles"))
            if "@deprecated" in attr:
                out.append(Problem("deprecated", where, re.sub(r"<[^>]+>", "",
                                                               attr["@deprecated"]["message"])))
            if v is None:
                out.append(Problem("error", where, "null value (omit the attribute instead)"))
                continue
            self._attribute(attr, v, where, profiles, out)
        for name, attr in attrs.items():
            needs = attr.get("profiles")
            active = not needs or profiles.intersection(needs)
            if attr.get("requirement") == "required" and active and name not in value:
                out.append(Problem("error", f"{path}.{name}" if path else name, "required, missing"))
        one_of = constraints.get("at_least_one")
        if one_of and not any(k in value for k in one_of):
            out.append(Problem("error", path, f"needs at least one of {one_of}"))
        if "just_one" in constraints and sum(k in value for k in constraints["just_one"]) != 1:
            out.append(Problem("error", path, f"needs exactly one of {constraints['just_one']}"))

    def _attribute(self, attr: dict[str, Any], v: Any, path: str, profiles: set[str],
                   out: list[Problem]) -> None:
        if attr.get("is_array"):
            if not isinstance(v, list):
                out.append(Problem("error", path, "expected an array"))
                return
            for i, item in enumerate(v):
                self._one(attr, item, f"{path}[{i}]", profiles, out)
        else:
            self._one(attr, v, path, profiles, out)

    def _one(self, attr: dict[str, Any], v: Any, path: str, profiles: set[str],
             out: list[Problem]) -> None:
        t = attr["type"]
        if t == "object_t":
            obj = self.objects[attr["object_type"]]
            if "@deprecated" in obj:
                out.append(Problem("deprecated", path, f"object {attr['object_type']}: " + re.sub(
                    r"<[^>]+>", "", obj["@deprecated"]["message"])))
            if attr["object_type"] == "object":  # the open object: anything goes inside
                if not isinstance(v, dict):
                    out.append(Problem("error", path, "expected an object"))
                self._json_safe(v, path, out)
                return
            self._object(obj["attributes"], obj.get("constraints", {}), v, path, profiles, out)
            return
        self._scalar(t, v, path, out)
        enum = attr.get("enum")
        if enum and str(v) not in enum:
            out.append(Problem("error", path, f"{v!r} not in enum {sorted(enum)}"))

    def _scalar(self, t: str, v: Any, path: str, out: list[Problem]) -> None:
        spec = self.types.get(t, {})
        base = t
        while base not in ("string_t", "integer_t", "long_t", "float_t", "boolean_t", "json_t"):
            base = self.types[base]["type"]
        if base == "json_t":
            self._json_safe(v, path, out)
            return
        if base == "boolean_t":
            ok = isinstance(v, bool)
        elif base == "float_t":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif base in INT_RANGE:
            ok = isinstance(v, int) and not isinstance(v, bool)
            lo, hi = INT_RANGE[base]
            if ok and not lo <= v <= hi:
                out.append(Problem("error", path, f"{v} out of {base} range"))
            if ok and abs(v) > JSON_SAFE:
                out.append(Problem("error", path, f"{v} is not exact in double-based JSON readers"))
        else:
            ok = isinstance(v, str)
            if ok and "regex" in spec and not re.match(spec["regex"], v):
                out.append(Problem("error", path, f"{v!r} does not match {t}"))
            if ok and len(v) > spec.get("max_len", self.types["string_t"]["max_len"]):
                out.append(Problem("error", path, f"longer than {t} allows"))
        if not ok:
            out.append(Problem("error", path, f"{v!r} is not a {t}"))
        rng = spec.get("range")
        if ok and rng and not rng[0] <= v <= rng[1]:
            out.append(Problem("error", path, f"{v} out of range {rng}"))

    def _json_safe(self, v: Any, path: str, out: list[Problem]) -> None:
        if isinstance(v, bool):
            return
        if isinstance(v, int) and abs(v) > JSON_SAFE:
            out.append(Problem("error", path, f"{v} is not exact in double-based JSON readers"))
        elif isinstance(v, dict):
            for k, x in v.items():
                self._json_safe(x, f"{path}.{k}", out)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                self._json_safe(x, f"{path}[{i}]", out)
