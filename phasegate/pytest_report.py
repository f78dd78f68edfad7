"""The pytest side of the report (phasegate.report holds the knowledge).

- Every run of the gates writes Allure results (allure-pytest-bdd) to the inventory's
  `report.results_dir` unless `--alluredir` says otherwise; runs of the suite's own tests
  (`pytest tests`) are left alone.
- Each gate gets labels (phase, project, registry, node, plan title, feature) and a link to
  the plan's section, as allure-pytest-bdd markers set at collection.
- A failed or broken step gets its evidence attached while it is still the open step: the
  GateFailed evidence and the redacted HTTP exchanges the step made.
- The results get environment.properties, categories.json and executor.json at start, and a
  redaction pass over everything written at the end.
- `--push-metrics` sends each gate's outcome to the Pushgateway at the end.
- Pending and NotJudged (phasegate.verdict) get their own Allure status (`unknown`), category and
  label `outcome`, and their own state in the pushed metrics: never a pass, never a skip.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import allure_commons
import pytest

from phasegate import report
from phasegate.http import GUARD, TRANSCRIPT
from phasegate.secrets import redact
from phasegate.verdict import Broken, GateFailed, NotJudged, Pending

ALLURE_ENV = "PHASEGATE_ALLURE"  # "0" turns the default results directory off
_SCENARIO_MARK = pytest.StashKey[int]()


def runs_gates(config: pytest.Config) -> bool:
    """True when the run collects the gates (steps/ or features/), not the suite's own tests."""
    root = Path(config.rootpath).resolve()
    gate_dirs = [root / "steps", root / "features"]
    for arg in config.args:
        path = Path(str(arg).split("::")[0])
        path = (Path(config.invocation_params.dir) / path).resolve() if not path.is_absolute() else path
        if path == root or any(path == d or d in path.parents for d in gate_dirs):
            return True
    return False


def configure(config: pytest.Config, inv) -> None:
    """Called by phasegate.pytest_plugin's pytest_configure (tryfirst: before allure reads the option)."""
    has_allure = hasattr(config.option, "allure_report_dir")
    if has_allure and not config.option.allure_report_dir and os.environ.get(ALLURE_ENV, "1") != "0" \
            and runs_gates(config) and not config.option.collectonly:
        config.option.allure_report_dir = str(Path(inv.report.results_dir))
    if config.getoption("--push-metrics") and not _pushgateway_url(config, inv):
        raise pytest.UsageError("--push-metrics: no Pushgateway (set metrics.pushgateway_url in the inventory "
                                "or pass --pushgateway URL)")
    config.pluginmanager.register(ReportPlugin(config, inv), "phasegate-report")
    register_criterion_charts(config)


def _pushgateway_url(config: pytest.Config, inv) -> str:
    explicit = config.getoption("--pushgateway")
    if explicit:
        return explicit
    metrics = getattr(inv, "metrics", None)  # the metrics area's inventory section
    return str(getattr(metrics, "pushgateway_url", "") or "")


def _scenario(item: pytest.Item):
    """The pytest-bdd scenario template of a collected item (None for plain tests)."""
    fn = getattr(item, "obj", None)
    if fn is None:
        return None
    try:
        from pytest_bdd.scenario import scenario_wrapper_template_registry as registry  # pytest-bdd 8/9
    except ImportError:  # pragma: no cover
        return getattr(fn, "__scenario__", None)
    return registry.get(fn) or getattr(fn, "__scenario__", None)


def _params(item: pytest.Item) -> dict:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params.get("_pytest_bdd_example", {}) or {}) if callspec else {}


def gate_of(item: pytest.Item) -> report.Gate | None:
    sc = _scenario(item)
    if sc is None:
        return None
    params = _params(item)
    return report.Gate(
        phase=report.phase_of(m.name for m in item.iter_markers()),
        name=report.gate_name(sc.name, params),
        feature=getattr(sc.feature, "name", "") or "",
        params=params,
    )


def _from_step_text(name: str, value, step) -> bool:
    if name in ("datatable", "docstring"):
        return True
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value) in step.name


class ReportPlugin:
    def __init__(self, config: pytest.Config, inv):
        self.config = config
        self.inv = inv
        self.started = time.time()
        self.outcomes: dict[str, tuple[report.Gate, str]] = {}

    @property
    def results_dir(self) -> Path | None:
        d = getattr(self.config.option, "allure_report_dir", None)
        return Path(d) if d else None

    # -- collection: labels and links -------------------------------------
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        settings = self.inv.report
        for item in items:
            gate = gate_of(item)
            if gate is None:
                continue
            for name, value in report.labels(gate, settings):
                item.add_marker(pytest.mark.allure_label(value, label_type=name))
            link = report.plan_link(gate.phase, settings)
            if link:
                item.add_marker(pytest.mark.allure_link(link[0], name=link[1], link_type="link"))

    # -- the run ------------------------------------------------------------
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.started = time.time()
        if self.results_dir:
            report.write_support_files(self.results_dir, self.inv)

    def pytest_bdd_before_scenario(self, request, feature, scenario) -> None:
        request.node.stash[_SCENARIO_MARK] = TRANSCRIPT.mark()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_bdd_before_step_call(self, request, feature, scenario, step, step_func, step_func_args):
        # allure-pytest-bdd shows every argument of a step function as a step parameter; show the
        # values the Gherkin text gave, not the fixtures (an Inventory repr, a client object)
        hidden = {k: step_func_args.pop(k) for k in list(step_func_args)
                  if not _from_step_text(k, step_func_args[k], step)}
        try:
            yield
        finally:
            step_func_args.update(hidden)

    @pytest.hookimpl(tryfirst=True)  # while the failed step is still the open Allure step
    def pytest_bdd_step_error(self, request, feature, scenario, step, step_func, step_func_args, exception) -> None:
        if not self.results_dir:
            return
        try:
            if isinstance(exception, GateFailed) and exception.evidence:
                report.attach_text("Evidence", exception.evidence)
            if isinstance(exception, (Pending, NotJudged)):
                # its own outcome in the report: labelled here, the result's status set at session end
                state = report.PENDING if isinstance(exception, Pending) else report.NOT_JUDGED
                report.label(report.OUTCOME_LABEL, state)
                report.attach_text(report.OUTCOME_TITLES[state], str(exception))
            if isinstance(exception, Broken):
                report.attach_text("Why the gate could not be judged", f"{type(exception).__name__}: {exception}")
            # the whole scenario's exchanges: the request that shows the defect is often
            # made by the When step, and the Then step fails on its answer
            report.attach_http("HTTP exchanges (redacted)", request.node.stash.get(_SCENARIO_MARK, 0))
        except Exception as e:  # the report must never hide the verdict
            print(f"phasegate report: could not attach evidence: {redact(str(e))}", file=sys.stderr)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call):
        outcome = yield
        rep = outcome.get_result()
        # captured stdout/stderr/log go to the terminal, junit and the stdout attachment
        rep.sections = [(title, redact(content)) for title, content in rep.sections]
        gate = gate_of(item)
        if gate is None or not gate.phase:
            return
        exc = call.excinfo.value if call.excinfo is not None else None
        opened = isinstance(exc, (Pending, NotJudged)) and rep.when in ("setup", "call")
        results_dir = self.results_dir
        if rep.when == "setup" and (rep.failed or opened) and results_dir:
            self._result_for_setup_error(results_dir, item, gate, rep, call)
        prev = self.outcomes.get(item.nodeid, (gate, "passed"))[1]
        if opened and isinstance(exc, Pending):
            self.outcomes[item.nodeid] = (gate, report.PENDING)
        elif opened:
            self.outcomes[item.nodeid] = (gate, report.NOT_JUDGED)
        elif rep.failed:
            # GateFailed (an AssertionError) is a product defect; anything else could not be judged
            self.outcomes[item.nodeid] = (gate, "broken" if exc is not None and not isinstance(exc, AssertionError)
                                          else "failed")
        elif rep.skipped and prev == "passed" and rep.when in ("setup", "call"):
            self.outcomes[item.nodeid] = (gate, "skipped")
        elif item.nodeid not in self.outcomes:
            self.outcomes[item.nodeid] = (gate, prev)

    def _result_for_setup_error(self, results_dir: Path, item, gate: report.Gate, rep, call) -> None:
        sc = _scenario(item)
        exc = call.excinfo.value if call.excinfo else None
        link = report.plan_link(gate.phase, self.inv.report)
        labels = report.labels(gate, self.inv.report) + [("feature", gate.feature), ("framework", "pytest-bdd")]
        labels += [("tag", m.name) for m in item.iter_markers() if not m.args and not m.kwargs]
        status = "failed" if isinstance(exc, AssertionError) else "broken"
        message = call.excinfo.exconly() if call.excinfo else "setup failed"
        trace = rep.longreprtext
        if isinstance(exc, (Pending, NotJudged)):  # a fixture said so before the scenario began
            state = report.PENDING if isinstance(exc, Pending) else report.NOT_JUDGED
            status, message, trace = "unknown", report.OUTCOME_PREFIX[state] + str(exc), ""
            labels.append((report.OUTCOME_LABEL, state))
        report.write_result(
            results_dir, name=gate.name,
            full_name=f"{os.path.normpath(sc.feature.rel_filename)}:{sc.name}",
            status=status, message=message, trace=trace,
            labels=labels, links=[link] if link else [], params=gate.params,
            start_ms=int(call.start * 1000), stop_ms=int(call.stop * 1000))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        if self.results_dir:
            report.mark_open_outcomes(self.results_dir, since=self.started)
            report.scrub(self.results_dir, since=self.started)
        if self.config.getoption("--push-metrics"):
            try:
                n = self._push()
                self._say(f"phasegate: pushed {n} gate verdict(s) to the Pushgateway")
            except Exception as e:
                self._say(f"phasegate: --push-metrics failed: {redact(str(e))}")
                if session.exitstatus == 0:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _push(self) -> int:
        from phasegate import http
        from phasegate.prometheus import Pushgateway

        verdicts = [report.Verdict(g.phase, g.name, g.project, outcome)
                    for g, outcome in self.outcomes.values() if outcome in report.STATES]
        if not verdicts:
            return 0
        metrics = getattr(self.inv, "metrics", None)
        settings = http.HttpSettings.from_timeouts(self.inv.timeouts)
        gateway = Pushgateway(_pushgateway_url(self.config, self.inv), settings,
                              ca_bundle=getattr(metrics, "ca_bundle", "") or "")
        try:
            with GUARD.writes_allowed("--push-metrics: gate verdicts to the Pushgateway"):
                return report.push_verdicts(gateway, self.inv.report.push_job, verdicts, run_timestamp=self.started)
        finally:
            gateway.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.results_dir:
            terminalreporter.write_line(f"allure results: {self.results_dir} (render: phasegate report)")

    def _say(self, line: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr:
            tr.write_line(line)
        else:
            print(line, file=sys.stderr)


# --------------------------------------------------------------------------
# Charts of the bake criteria (issue 21): every "criterion-data" attachment (a bake criterion's
# chart data, attached by phasegate.bake where it judges) gets its chart as a PNG beside it.
# --------------------------------------------------------------------------


class CriterionCharts:
    """An allure-commons plugin: whenever a step attaches "criterion-data" (the JSON of a
    phasegate.charts.CriterionData), its chart is drawn and attached beside it, in the same step."""

    def __init__(self):
        self.seen = 0  # criterion-data attachments so far
        self.criteria: list[str] = []  # their criteria, in order
        self._drawn: dict[str, bytes] = {}  # data -> its PNG: the same data again (the exit verdict) is not redrawn

    @allure_commons.hookimpl(trylast=True)  # after the listener wrote the data: the chart follows it
    def attach_data(self, body, name, attachment_type, extension):
        from phasegate import charts

        if name != charts.ATTACHMENT_NAME:
            return
        self.seen += 1
        try:
            data = charts.CriterionData.from_json(body)
            self.criteria.append(data.title)  # the criterion's name (JSON "criterion" or "title")
            key = body if isinstance(body, str) else bytes(body).decode()
            if key not in self._drawn:
                self._drawn[key] = charts.render_png(data)
            report.attach_criterion_chart(data, png=self._drawn[key])
        except Exception as e:  # a chart must never hide the verdict
            print(f"phasegate report: could not draw the criterion chart: {redact(str(e))}", file=sys.stderr)


def register_criterion_charts(config: pytest.Config) -> None:
    """Charts only when Allure results are written (attaching is a no-op otherwise)."""
    if not getattr(config.option, "allure_report_dir", None):
        return
    charts = CriterionCharts()
    allure_commons.plugin_manager.register(charts)
    config.add_cleanup(lambda: allure_commons.plugin_manager.unregister(charts))
