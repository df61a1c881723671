"""Eunomia's rule engine: a pure library (no Kafka, no faust), so the worker,
offline replay, the benchmark and the tests all drive the same code.

    ruleset = load_files(paths)            # or load_text(yaml), load_data(dicts)
    engine = Engine(ruleset, lateness_ns=2_000_000_000)
    alerts = engine.process(event)         # event: a decoded enriched_event dict
    alerts += engine.advance_watermark(ts) # event time moves on without events
"""

from eunomia.processors.rules.alerts import alert_id
from eunomia.processors.rules.condition import parse_condition
from eunomia.processors.rules.engine import DEFAULT_SPAN_NS, ENGINE_KEY, Engine, StateError
from eunomia.processors.rules.errors import MESSAGES, Diagnostic, RuleError, RuleLoadError, RuleSyntaxError
from eunomia.processors.rules.loader import lint_files, load_data, load_files, load_text, pack_files
from eunomia.processors.rules.model import LEVEL_SEVERITY, Rule, RuleSet
from eunomia.processors.rules.ocsf import ocsf_json, to_ocsf

__all__ = [
    "DEFAULT_SPAN_NS", "ENGINE_KEY", "LEVEL_SEVERITY", "MESSAGES", "Diagnostic", "Engine", "Rule",
    "RuleError", "RuleLoadError", "RuleSet", "RuleSyntaxError", "StateError", "alert_id", "lint_files",
    "load_data", "load_files", "load_text", "ocsf_json", "pack_files", "parse_condition", "to_ocsf",
]
