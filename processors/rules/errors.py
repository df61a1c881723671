"""Typed errors and load diagnostics of the rule engine.

Every message is a constant in ``MESSAGES`` so tests assert them verbatim and
users can search for a code. A diagnostic carries the file position and a
snippet with a caret, like a compiler's, because rule authors fix files, not
stack traces.
"""

from __future__ import annotations

from dataclasses import dataclass

from eunomia.errors import EunomiaError

__all__ = ["MESSAGES", "Diagnostic", "RuleError", "RuleLoadError", "RuleSyntaxError"]

MESSAGES: dict[str, str] = {
    "E001": "YAML syntax error: {detail}",
    "E002": "a rule file must be a YAML list of list, macro and rule items",
    "E003": "item must be a mapping with exactly one of the keys list, macro, rule",
    "E004": "missing required key '{key}'",
    "E005": "unknown key '{key}'",
    "E006": "'{key}' must be {expected}",
    "E010": "condition syntax error: {detail}",
    "E011": "unknown field '{field}'",
    "E012": "undefined macro '{name}'",
    "E013": "macro '{name}' refers to itself",
    "E014": "duplicate {kind} '{name}'",
    "E015": "invalid duration '{value}' (use e.g. 500ms, 30s, 5m, 1h)",
    "E016": "invalid level '{value}' (use event, warning or alert)",
    "E017": "unknown field '{field}' in output template",
    "E018": "operator '{op}' does not apply to {ftype} field '{field}'",
    "E019": "value '{value}' is not a number for field '{field}'",
    "E020": "count condition must have exactly one of gt, gte, lt, lte, eq with an integer",
    "E021": "a missing-event step must be the last step and cannot be the first",
    "E022": "every step must have as many 'by' fields as the first step",
    "E023": "a rule needs exactly one of condition-only, sequence, threshold, distinct, temporal, "
            "temporal_ordered",
    "E024": "exception '{name}': values must be lists of {n} items matching its fields",
    "E025": "invalid comparison '{value}' in exception (use one of {ops})",
    "E026": "cannot read rule file: {detail}",
    "E027": "'until' must have as many 'by' fields as the steps ({n})",
    "W001": "tags should start with a maturity tag (maturity_stable, maturity_incubating, "
            "maturity_sandbox)",
    "W002": "rule has no MITRE ATT&CK tag (mitre_<tactic> and T<nnnn>)",
    "W003": "group key has neither container.id nor host.id: the worker does not repartition, "
            "so events of one group may land on different workers",
    "W004": "sequence has no maxspan: a pending sequence expires after the default span "
            "(setting rules.default_maxspan_s, 1 h unless configured)",
}


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning at a position in a rule file (1-based line and column)."""

    code: str
    message: str
    file: str
    line: int
    column: int
    snippet: str = ""

    @property
    def is_error(self) -> bool:
        return self.code.startswith("E")

    def format(self) -> str:
        kind = "error" if self.is_error else "warning"
        head = f"{self.file}:{self.line}:{self.column}: {kind} {self.code}: {self.message}"
        return f"{head}\n{self.snippet}" if self.snippet else head


def message(code: str, **kw: object) -> str:
    return MESSAGES[code].format(**kw)


class RuleError(EunomiaError):
    """Root of rule-engine errors."""


class RuleSyntaxError(RuleError):
    """A condition does not parse; ``line``/``column`` are 1-based within the condition."""

    def __init__(self, detail: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message("E010", detail=detail))
        self.detail = detail
        self.line = line
        self.column = column


class RuleLoadError(RuleError):
    """One or more rule files have errors; all of them are in ``diagnostics``."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.is_error]
        first = errors[0].format().splitlines()[0] if errors else "no errors"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first}{more}")
