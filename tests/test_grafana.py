"""docs/grafana/retrochat.json: every query names only metrics that the server exports (or that
Prometheus itself makes, such as `up`), so the dashboard cannot drift from retrochat/metrics.py."""
import json
import re

import pytest

from retrochat import metrics
from tests.live import ROOT

DASHBOARD = ROOT / "docs" / "grafana" / "retrochat.json"
# Made by Prometheus for every target, not by the server.
PROMETHEUS_MADE = {"up"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once strings, label matchers,
    range selectors and grouping clauses are removed, that are not function calls or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in PROMQL_WORDS:
            continue
        found.add(name)
    return found


def test_the_parser_finds_metric_names_and_nothing_else():
    expr = 'histogram_quantile(0.99, sum by (le) (rate(retrochat_delivery_latency_seconds_bucket{job="x"}[5m]))) / on (instance) up'
    assert metric_names(expr) == {"retrochat_delivery_latency_seconds_bucket", "up"}


def queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def exported(client) -> set[str]:
    """Every family the server answers at /metrics (the library's collectors included), with each
    histogram's series names, plus those registered in retrochat/metrics.py that have no sample yet."""
    text = client.get("/metrics").content.decode()
    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    names = {name for name, _ in families} | metrics.names()
    names |= {name + suffix for name, kind in families if kind == "histogram" for suffix in HISTOGRAM_SUFFIXES}
    names |= {name + "_total" for name, kind in families if kind == "counter" and not name.endswith("_total")}
    return names


def test_the_dashboard_has_the_panels_an_operator_needs():
    titles = {title for title, _ in queries()}
    for needed in ("Open WebSocket connections", "Deliveries per second", "Delivery latency", "Errors by code",
                   "Slow-consumer closes (4008)", "Recoveries by outcome", "Users online (per process)"):
        assert needed in titles


@pytest.mark.django_db
def test_every_query_names_only_exported_metrics(client):
    known = exported(client) | PROMETHEUS_MADE
    for title, expr in queries():
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= known, f"{title}: {expr!r} names {sorted(names - known)}, which the server does not export"
