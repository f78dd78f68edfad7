"""A pytest plugin loaded into gate runs by the harness: select scenarios by name,
write one JSON line per scenario outcome."""

from __future__ import annotations

import json


def pytest_addoption(parser):
    parser.addoption("--gate-report", default=None)
    parser.addoption("--scenario", action="append", default=[], help="exact scenario name (repeatable)")


def _scenario_of(item):
    """The pytest-bdd scenario template of a test item (pytest-bdd < 8: `__scenario__`; 8+: a registry)."""
    obj = getattr(item, "obj", None)
    sc = getattr(obj, "__scenario__", None)
    if sc is None and obj is not None:
        try:
            from pytest_bdd.scenario import scenario_wrapper_template_registry

            sc = scenario_wrapper_template_registry.get(obj)
        except (ImportError, TypeError):
            sc = None
    return sc


def scenario_name(item) -> str:
    sc = _scenario_of(item)
    if sc is None:
        return item.name
    name = sc.name
    params = getattr(getattr(item, "callspec", None), "params", {}) or {}
    ex = params.get("_pytest_bdd_example") or {}
    for k, v in ex.items():
        name = name.replace(f"<{k}>", str(v))
    return name


def pytest_collection_modifyitems(config, items):
    wanted = config.getoption("--scenario")
    if not wanted:
        return
    keep, drop = [], []
    for item in items:
        (keep if scenario_name(item) in wanted or _template(item) in wanted else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def _template(item) -> str:
    sc = _scenario_of(item)
    return sc.name if sc else item.name


_results: dict = {}


def pytest_runtest_logreport(report):
    entry = _results.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "message": ""})
    if getattr(report, "phasegate_outcome", ""):  # Pending / NotJudged (phasegate.pytest_plugin)
        entry["outcome"] = report.phasegate_outcome
        entry["message"] += getattr(report, "phasegate_message", "")
    elif report.failed:
        entry["outcome"] = "failed" if report.when == "call" else "error"
        entry["message"] += str(report.longrepr)
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        entry["message"] += str(report.longrepr)


def pytest_collection_finish(session):
    for item in session.items:
        _results[item.nodeid] = {
            "nodeid": item.nodeid,
            "scenario": scenario_name(item),
            "template": _template(item),
            "markers": sorted({m.name for m in item.iter_markers()}),
            "outcome": "not-run",
            "message": "",
        }


def pytest_runtest_setup(item):
    _results[item.nodeid]["outcome"] = "passed"


def pytest_sessionfinish(session):
    path = session.config.getoption("--gate-report")
    if path:
        with open(path, "w") as fh:
            for entry in _results.values():
                fh.write(json.dumps(entry) + "\n")
