"""Reading Prometheus text and the Grafana dashboard's queries, for the metrics tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]  # the checkout (tests/support/ is two below)
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "lockngen.json"
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "gauge": ("",),
    "info": ("_info",),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
PROMQL_WORDS |= {"and", "or", "unless", "inf", "nan"}


class Scrape:
    """One exposition text: ``value(name, **labels)`` sums the matching samples."""

    def __init__(self, text: str) -> None:
        self.samples = [s for f in text_string_to_metric_families(text) for s in f.samples]

    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def value(self, name: str, **labels: str) -> float:
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert found, f"no sample {name} {labels}"
        return sum(found)

    def labels(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self.samples if s.name == name]


def sample_names(families: Iterable[Metric]) -> set[str]:
    """Every sample name these families may expose (labelled ones may have no samples yet)."""
    names: set[str] = set()
    for family in families:
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {s.name for s in family.samples}
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def expressions(board: dict[str, Any]) -> list[str]:
    """Every PromQL query of every panel (rows' nested panels too)."""
    found: list[str] = []
    stack = list(board.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (matchers, ``by (...)``) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    tokens = re.findall(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text)
    return {name for name, call in tokens if not call and name.lower() not in PROMQL_WORDS}
