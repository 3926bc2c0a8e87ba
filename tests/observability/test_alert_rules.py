"""deploy/prometheus/alerts.yml without promtool: well-formed rules whose expressions name only metrics (and label
values) that /metrics really serves, so a renamed metric cannot leave an alert silently watching nothing."""

import re
from pathlib import Path

import pytest
import yaml

from provisioning.tasks import email_notification_send_task
from tests.provisioning.factories import EmailNotificationFactory

pytestmark = pytest.mark.django_db

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
# PromQL words that look like metric names: aggregation modifiers and set operators.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "le",
}


def rules() -> list[dict]:
    config = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [rule for group in config["groups"] for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, aggregations or keywords, outside
    label matchers, ranges, strings and by/without/on/ignoring groupings."""
    bare = re.sub(r'\{[^}]*\}|\[[^\]]*\]|"[^"]*"', " ", expr)
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare):
        if match[0] not in KEYWORDS and not bare[match.end() :].lstrip().startswith("("):
            names.add(match[0])
    return names


def equality_matchers(expr: str) -> list[tuple[str, str, str]]:
    """(metric, label, value) for each `metric{label="value"}` in the expression."""
    found = []
    for metric, matchers in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
        for label, value in re.findall(r'(\w+)\s*=\s*"([^"]*)"', matchers):
            found.append((metric, label, value))
    return found


@pytest.fixture
def exposed(client, settings) -> str:
    """What /metrics serves once the service did a little of everything: a request, a task run by a worker."""
    email = EmailNotificationFactory()
    email_notification_send_task.apply(args=[email.pk])
    client.get("/api/health/")
    response = client.get("/metrics", REMOTE_ADDR="10.0.0.5")
    assert response.status_code == 200
    return response.content.decode()


def test_every_rule_is_well_formed():
    seen = set()
    for rule in rules():
        assert rule["alert"] not in seen, f"{rule['alert']} twice"
        seen.add(rule["alert"])
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert expr_balanced(rule["expr"]), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
    assert "PaidButNotProvisioned" in seen


def expr_balanced(expr: str) -> bool:
    depth = 0
    for char in re.sub(r'"[^"]*"', "", expr):
        depth += {"(": 1, ")": -1, "{": 1, "}": -1, "[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def test_every_expression_names_metrics_that_metrics_serves(exposed):
    served = {line.split("{")[0].split(" ")[0] for line in exposed.splitlines() if line and not line.startswith("#")}
    # A labelled metric nothing has counted yet (no Stripe call in this test) is declared, with no series
    suffixes = {"counter": ["", "_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    for name, kind in re.findall(r"^# TYPE (\S+) (\w+)$", exposed, re.MULTILINE):
        served |= {name + suffix for suffix in suffixes.get(kind, [""])}
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        missing = names - served
        assert not missing, f"{rule['alert']} names {sorted(missing)}, which /metrics does not serve"


def test_every_label_value_an_expression_selects_exists(exposed):
    for rule in rules():
        for metric, label, value in equality_matchers(rule["expr"]):
            assert re.search(rf'^{re.escape(metric)}\{{[^}}]*{label}="{re.escape(value)}"', exposed, re.MULTILINE), (
                f"{rule['alert']}: {metric} has no series with {label}={value!r}"
            )


def test_the_paid_but_not_provisioned_alert_watches_the_collectors_figure():
    [rule] = [r for r in rules() if r["alert"] == "PaidButNotProvisioned"]

    assert metric_names(rule["expr"]) == {"checkout_paid_unprovisioned_sessions"}


def test_the_example_scrape_configuration_loads_the_rules():
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())

    assert config["rule_files"] == ["alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"


def test_the_checker_finds_a_misspelt_metric():
    # The check itself: a typo in a name is found, functions and keywords are not taken for metrics
    assert metric_names('sum by (kind) (rate(checkout_funnel_totl{stage="paid"}[5m])) > 0') == {"checkout_funnel_totl"}
    assert metric_names("histogram_quantile(0.95, sum by (le) (rate(x_bucket[10m]))) > 4") == {"x_bucket"}
