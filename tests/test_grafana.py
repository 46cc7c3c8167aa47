"""The Grafana dashboard, its provisioning file and the alerting rules in ``grafana/``.

The rules are checked and unit-tested by promtool. Every PromQL expression in the
dashboard and the rules must name only metrics the daemon exports, so a renamed
metric breaks this test rather than a panel or an alert in production.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import disable_created_metrics

from geoingest.metrics import Metrics, process_registry

GRAFANA = Path(__file__).resolve().parent.parent / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "geoingest.json"
PROVIDER = GRAFANA / "provisioning" / "dashboards" / "geoingest.yaml"
RULES = GRAFANA / "alerts" / "geoingest-rules.yaml"
RULE_TESTS = GRAFANA / "alerts" / "geoingest-rules.test.yaml"

STAGES = ["Discovery", "Workers", "Batches", "Output", "Process"]
ALERTS = [
    "GeoingestBacklogFileTooOld",
    "GeoingestBatchFlushFailing",
    "GeoingestBatchFlushSlow",
    "GeoingestEventLoopLagging",
    "GeoingestFileDescriptorsNearLimit",
    "GeoingestIngestStalled",
    "GeoingestNotReady",
    "GeoingestQueueSaturated",
    "GeoingestRejectionRatioHigh",
    "GeoingestRestartingRepeatedly",
    "GeoingestTargetDown",
    "GeoingestTargetMissing",
]
# Prometheus adds `up` to every target itself; it is the one name the daemon need not export.
OUTSIDE_NAMES = {"up"}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+\}?")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?\w+")
_NAME = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "atan2", "inf", "nan"}
_LABEL_VALUES = re.compile(r"^label_values\((.+),\s*\w+\)$")
_KEY = re.compile(r"^(?P<indent>\s*)(?:- )?(?P<key>\w+):\s*(?P<value>.*)$")


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression (which may hold Grafana variables) selects.

    Strings, label matchers, ranges, grouping clauses and offsets are cut out
    first; what is left that looks like a name and is not a function call or a
    keyword is a metric name.
    """
    text = _STRING.sub(" ", expr)
    for pattern in (_GRAFANA_VARIABLE, _MATCHERS, _RANGE, _GROUPING, _OFFSET):
        text = pattern.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def exported_names() -> set[str]:
    """Return every series name a freshly started daemon exposes on /metrics."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # as the daemon's server does
    registry = process_registry()
    Metrics(registry, sources=["drop"])
    return {sample.name for family in registry.collect() for sample in family.samples}


def dashboard() -> dict[str, Any]:
    """Return the dashboard as parsed JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Yield every JSON object inside ``node``, at any depth."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def dashboard_queries() -> list[str]:
    """Return every PromQL expression of the dashboard: panels, annotations and variables."""
    data = dashboard()
    queries = [obj["expr"] for obj in walk(data) if isinstance(obj.get("expr"), str)]
    for variable in data["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["definition"])
            assert match, f"variable {variable['name']} is not a label_values() query"
            queries.append(match.group(1))
    return queries


def panels() -> list[dict[str, Any]]:
    """Return the dashboard's panels other than rows."""
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def read_rules(text: str) -> list[dict[str, str]]:
    """Read the rules file's alerts into flat dictionaries of their keys.

    This reads only the layout the rules file is written in (one key per line,
    ``|`` and ``>-`` blocks for long values), which is why
    :func:`test_rules_pass_promtool_check` compares the count found here with
    promtool's.
    """
    rules: list[dict[str, str]] = []
    block_lines: list[str] = []
    block_key, block_indent = "", 0
    for line in [*text.splitlines(), "end:"]:
        indent = len(line) - len(line.lstrip())
        if block_key and (not line.strip() or indent > block_indent):
            block_lines.append(line.strip())
            continue
        if block_key:
            rules[-1][block_key] = " ".join(part for part in block_lines if part)
            block_key = ""
        match = _KEY.match(line)
        if match is None or match["key"] in {"groups", "rules", "name"}:
            continue
        if match["key"] == "alert":
            rules.append({})
        if not rules:
            continue
        if match["value"] in {"|", ">-"}:
            block_key, block_indent, block_lines = match["key"], indent, []
        else:
            rules[-1][match["key"]] = match["value"]
    return rules


def rules() -> list[dict[str, str]]:
    """Return the alerting rules of the rules file."""
    return read_rules(RULES.read_text(encoding="utf-8"))


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run promtool from the alerts folder, failing the test when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install it with `apt-get install -y prometheus`")
    return subprocess.run(
        [path, *map(str, args)], cwd=RULES.parent, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job="geoingest"} == 0', {"up"}),
        (
            'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{le!="1e3"}[5m])))',
            {"a_bucket"},
        ),
        ("sum(rate(a_total[$__rate_interval])) / sum(b) without (source) > 1e3", {"a_total", "b"}),
        ("a / on (instance) group_left (version) b offset 5m and bool c", {"a", "b", "c"}),
        ('label_replace(a, "dst", "$1", "src", "(.*)")', {"a"}),
        ("time() - (c > 0)", {"c"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_dashboard_and_rules_query_only_metrics_the_daemon_exports() -> None:
    queries = dashboard_queries() + [rule["expr"] for rule in rules()]
    allowed = exported_names() | OUTSIDE_NAMES
    unknown = {name: expr for expr in queries for name in metric_names(expr) if name not in allowed}
    assert unknown == {}
    assert all(metric_names(expr) for expr in queries)


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    # promtool has no command that parses a bare expression, so the dashboard's queries are
    # checked as the expressions of recording rules, with Grafana's variables filled in.
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for number, query in enumerate(dashboard_queries()):
        expr = re.sub(r"\$__\w+", "5m", query)
        expr = _GRAFANA_VARIABLE.sub(".*", expr)
        lines += [f"      - record: dashboard:query_{number}", f"        expr: {json.dumps(expr)}"]
    rules_file = tmp_path / "dashboard-queries.yaml"
    rules_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = promtool("check", "rules", rules_file)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", "--lint=all", "--lint-fatal", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_the_documented_alerts() -> None:
    assert sorted(rule["alert"] for rule in rules()) == ALERTS


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_rule_has_severity_summary_description_and_runbook(rule: dict[str, str]) -> None:
    assert rule["severity"] in {"warning", "critical"}
    assert rule["summary"]
    assert rule["description"]
    assert rule["runbook"] == f"README.md#{rule['alert'].lower()}"
    assert 'job="geoingest"' in rule["expr"]


@pytest.mark.parametrize("alert", ALERTS)
def test_each_rule_is_tested_firing_and_silent(alert: str) -> None:
    tests = RULE_TESTS.read_text(encoding="utf-8")
    silent = re.search(rf"alertname: {alert}\n\s+exp_alerts: \[\]\n", tests)
    firing = re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels:", tests)
    assert silent and firing


def test_dashboard_has_one_row_per_stage_in_order() -> None:
    rows = [panel["title"] for panel in dashboard()["panels"] if panel["type"] == "row"]
    assert rows == STAGES


def test_dashboard_takes_its_datasource_from_a_variable() -> None:
    data = dashboard()
    variable = data["templating"]["list"][0]
    datasources = [obj["datasource"] for obj in walk(data) if "datasource" in obj]
    assert (variable["type"], variable["name"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )
    assert "__inputs" not in data
    assert datasources
    assert all(ds == {"type": "prometheus", "uid": "${datasource}"} for ds in datasources)


def test_every_panel_has_a_unit_a_description_and_a_query() -> None:
    for panel in panels():
        assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    every = dashboard()["panels"]
    cells = [
        (x, y)
        for panel in every
        for x in range(panel["gridPos"]["x"], panel["gridPos"]["x"] + panel["gridPos"]["w"])
        for y in range(panel["gridPos"]["y"], panel["gridPos"]["y"] + panel["gridPos"]["h"])
    ]
    assert len({panel["id"] for panel in every}) == len(every)
    assert len(set(cells)) == len(cells)
    assert max(x for x, _ in cells) < 24


def test_provisioning_file_provides_the_dashboard_folder() -> None:
    text = PROVIDER.read_text(encoding="utf-8")
    assert text.startswith("# ")
    assert "\napiVersion: 1\n" in text
    assert "\n    type: file\n" in text
    assert "\n      path: /var/lib/grafana/dashboards/geoingest\n" in text
