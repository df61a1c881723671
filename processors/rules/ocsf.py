"""The OCSF rendering lives beside the one alert builder
(``processors/alerts/ocsf.py``), so every worker renders every alert type; this
name stays for the rule package's exports."""

from __future__ import annotations

from eunomia.processors.alerts.ocsf import ocsf_json, to_ocsf

__all__ = ["ocsf_json", "to_ocsf"]
