"""The pytest side of phasegate: inventory option, guards, verdict rendering, core fixtures.

Knowledge lives in phasegate/ modules that do not import pytest; this plugin
only wires them into a pytest run. Area fixtures and steps live in steps/.
"""

from __future__ import annotations

import signal
import types

import pytest
from _pytest._code.code import Traceback, TracebackEntry

from phasegate import config as inventory_config
from phasegate import pytest_report
from phasegate.http import GUARD, HttpSettings
from phasegate.secrets import redact
from phasegate.verdict import Broken, GateFailed, NotJudged, Pending

PHASES = [f"phase{i}" for i in range(6)]
_INVENTORY = pytest.StashKey[inventory_config.Inventory]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("phasegate")
    g.addoption("--inventory", default=None, metavar="PATH",
                help=f"inventory TOML (default: ${inventory_config.INVENTORY_ENV} or phasegate.toml)")
    g.addoption("--push-metrics", action="store_true", default=False,
                help="push each gate's outcome to the Pushgateway as phasegate_gate_state / phasegate_gate_passed "
                     "(the bake job does)")
    g.addoption("--pushgateway", default=None, metavar="URL",
                help="Pushgateway for --push-metrics (default: the inventory's metrics.pushgateway_url)")


@pytest.hookimpl(tryfirst=True)  # before allure-pytest-bdd reads --alluredir
def pytest_configure(config: pytest.Config) -> None:
    try:
        config.stash[_INVENTORY] = inventory_config.load(config.getoption("--inventory"))
    except inventory_config.InventoryError as e:
        raise pytest.UsageError(str(e)) from None
    args = [str(a) for a in config.invocation_params.args]
    explicit = config.args_source == pytest.Config.ArgsSource.ARGS or any(
        a.startswith(("--rootdir", "-c", "--config-file")) for a in args)  # the user named what to collect
    if "--inventory" in args and not explicit and (
            config.inipath is None or not (config.rootpath / "features").is_dir()):
        # pytest picks its root directory before plugin options exist: a separate PATH was taken for a
        # directory to collect, and the gates' own settings (testpaths, features/) were not found.
        raise pytest.UsageError("write --inventory=PATH (one word, with '='): with a space pytest took PATH for "
                                "the tests' root directory")
    pytest_report.configure(config, config.stash[_INVENTORY])


@pytest.hookimpl(wrapper=True)  # after every plugin's start of the session: from here a Ctrl-C is an ordinary one
def pytest_sessionstart(session: pytest.Session):
    # `phasegate lab run` starts the gates with SIGINT blocked (phasegate.cli._gates_until_done): a Ctrl-C
    # while pytest imports and parses arguments would end in a traceback from pytest's own code. Pending until
    # now, it interrupts the session as it begins: teardowns and summary run as for any Ctrl-C.
    try:
        return (yield)
    finally:
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter formats it
def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    # On Python 3.11 a KeyboardInterrupt raised at an instruction without a line number leaves a traceback
    # entry whose tb_lineno is None; pytest's report of the Ctrl-C then fails with a TypeError of its own
    # (`tb_lineno - 1` in _pytest/_code/code.py; the trace in pytest-dev/pytest-xdist#1196). Such an entry
    # names no line to show: it is left out.
    raw: types.TracebackType | None = excinfo.tb
    kept, lineless = [], 0
    while raw is not None:
        if raw.tb_lineno is None:
            lineless += 1
        else:
            kept.append(TracebackEntry(raw))
        raw = raw.tb_next
    if lineless:
        excinfo.traceback = Traceback(kept)


def gate_markers(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers()}


def is_gate(item: pytest.Item) -> bool:
    return bool(gate_markers(item) & set(PHASES))


def pytest_collection_finish(session: pytest.Session) -> None:
    inv = session.config.stash.get(_INVENTORY, None)
    if inv is None:
        return
    markers: set[str] = set()
    for item in session.items:
        if is_gate(item):
            markers |= gate_markers(item)
    missing = inv.missing_secrets(markers)
    if missing:
        raise pytest.UsageError(
            "missing secrets for the selected gates: " + "; ".join(missing)
        )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Read-only unless the scenario says @writes: enforced for every client.
    GUARD.set("writes" in gate_markers(item), reason=item.nodeid)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    # closed after the fixtures' teardown: a @writes gate's cleanup (finalizers) may still write
    try:
        return (yield)
    finally:
        GUARD.set(False)


_FORMATTERS = ("repr_failure", "_repr_failure_py")  # what pytest formats a failed call's / fixture's longrepr with


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    excinfo = call.excinfo
    verdict = excinfo is not None and isinstance(excinfo.value, (GateFailed, Broken, Pending, NotJudged))
    if verdict:
        # The report shows the verdict, never a traceback: pytest need not format one (reading and parsing the
        # whole source file of its frames, about 0.2 s a red gate) that nobody sees. Its formatter for this item
        # answers the verdict's own line instead, for as long as this report is made.
        line = verdict_line(excinfo.value)
        for name in _FORMATTERS:
            setattr(item, name, lambda *_args, **_kw: line)
    try:
        report = yield
    finally:
        if verdict:
            for name in _FORMATTERS:
                delattr(item, name)
    outcome = open_outcome(excinfo.value if excinfo is not None else None)
    if outcome and call.when in ("setup", "call"):
        # Pending / NotJudged: nothing is wrong, so the run's exit status stays 0; the outcome is its own
        # (pytest_report_teststatus below: "N pending", "N not judged" in the summary). Raised by a fixture
        # before the scenario began, the call phase cannot run: to pytest a skip, counted under its own word.
        message = redact(str(excinfo.value))
        report.phasegate_outcome, report.phasegate_message = outcome, message
        report.user_properties.append(("phasegate_outcome", outcome))
        if call.when == "setup":
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, line)  # an open outcome is a verdict
        else:
            report.outcome, report.longrepr = "passed", None
            report.sections.append((f"phasegate {OUTCOME_WORDS[outcome]}", message))
        return report
    if verdict:
        report.longrepr = line  # A verdict, not a traceback: the message says expected / seen / where.
    elif report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = redact(str(report.longrepr))
        report.longrepr = text
    return report


def verdict_line(exc: BaseException) -> str:
    """What the report says of a verdict: `FAILED: expected / seen / where`, `BROKEN (<kind>): ...`,
    `PENDING: ...`, `NOT JUDGED: ...` (redacted)."""
    if isinstance(exc, GateFailed):
        kind = "FAILED"
    elif isinstance(exc, Broken):
        kind = f"BROKEN ({type(exc).__name__})"
    else:
        kind = OUTCOME_WORDS[open_outcome(exc)].upper()
    return f"{kind}: {redact(str(exc))}"


OUTCOME_WORDS = {"pending": "pending", "not_judged": "not judged"}


def open_outcome(exc: BaseException | None) -> str:
    """"pending" / "not_judged" for the two verdicts that are neither a pass nor a failure, else ""."""
    if isinstance(exc, Pending):
        return "pending"
    if isinstance(exc, NotJudged):
        return "not_judged"
    return ""


def pytest_report_teststatus(report, config):
    outcome = getattr(report, "phasegate_outcome", "")
    if outcome and (report.when == "call" or (report.when == "setup" and report.skipped)):
        word = OUTCOME_WORDS[outcome]
        return word, "P" if outcome == "pending" else "N", (word.upper(), {"yellow": True})
    return None


def pytest_terminal_summary(terminalreporter) -> None:
    for _outcome, word in OUTCOME_WORDS.items():
        reports = terminalreporter.stats.get(word, [])
        if not reports:
            continue
        terminalreporter.write_sep("=", f"{word} ({len(reports)})", yellow=True)
        for rep in reports:
            terminalreporter.write_line(f"{word.upper()} {rep.nodeid}")
            for line in getattr(rep, "phasegate_message", "").splitlines():
                terminalreporter.write_line(f"    {line}")


# -- core fixtures (the public API of the suite's steps) -----------------------


@pytest.fixture(scope="session")
def inventory(pytestconfig: pytest.Config) -> inventory_config.Inventory:
    return pytestconfig.stash[_INVENTORY]


@pytest.fixture(scope="session")
def http_settings(inventory: inventory_config.Inventory) -> HttpSettings:
    return HttpSettings.from_timeouts(inventory.timeouts)
