"""What a reviewer sees (issue 21), checked in a real browser on the rendered single-file report.

Two runs of the gates against the lab share one history, as two days of the bake job would:
- day 1: two bake criteria, green;
- day 2: the same two with the lab history `bake-forgejo-near-oom-day3` (Forgejo's working set at
  93% of its limit on day 3: "never near OOM" turns red), plus the Phase 3 cutover rows with the
  fault `cutover-template-old-image` (the first project's pod template still on registry-private).
`phasegate.report.render` renders each day; headless Debian chromium opens day 2's report from
file://, driven over the DevTools protocol on a pipe (no port), clicks what a reviewer clicks and
checks: the trend of both runs on the dashboard the report opens with, the chart attached to the
red bake verdict, and the cutover matrix on the report's first page. Screenshots are kept in
reports/views/; with PHASEGATE_DOCS_SCREENSHOTS=1 they are also written to docs/ for the README.
A refusing proxy on loopback records anything the pages would fetch from outside.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
import tomli_w

from phasegate import charts, report
from tests import REPO
from tests.canary import leaks_in_tree
from tests.test_report_browser import CHROMIUM_FLAGS, CHROMIUM_OWN, _RefusingProxy

SHOTS = REPO / "reports" / "views"
DOCS = REPO / "docs"
DOCS_ENV = "PHASEGATE_DOCS_SCREENSHOTS"

NEAR_OOM = "Forgejo was never near OOM"
RETENTION = "The retention CronJob succeeded at least 14 times"
BAKE = [NEAR_OOM, RETENTION]
FIRST_PROJECT = "payslip-ingest"
CHART = "Chart: forgejo never near OOM"

pytestmark = [pytest.mark.lab, pytest.mark.slow]


class Browser:
    """Headless chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe:
    commands on fd 3, answers on fd 4, each a JSON message ended by NUL)."""

    def __init__(self, proxy: str, width: int = 1400, height: int = 1000):
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("chromium not installed: run scripts/setup.sh (Debian package chromium)")
        self.profile = tempfile.mkdtemp(prefix="phasegate-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()

        def child_fds():  # fds 3 and 4 in the child, inheritable, whatever numbers the pipes got
            a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(resp_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", f"--proxy-server={proxy}",
                "--remote-debugging-pipe", f"--window-size={width},{height}", "about:blank"]
        self.proc = subprocess.Popen(argv, preexec_fn=child_fds, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
        os.close(cmd_r)
        os.close(resp_w)
        self._buf, self._id = b"", 0
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", page=True)
        self.call("Emulation.setDeviceMetricsOverride", page=True, width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def call(self, method: str, page: bool = False, **params):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if page:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self._buf:
                chunk = os.read(self._resp_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the DevTools pipe during {method}")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def js(self, expression: str):
        r = self.call("Runtime.evaluate", page=True, expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def wait_for(self, condition: str, what: str, limit_ms: int = 20000):
        """Poll a JS condition in the page until it holds (the app renders asynchronously)."""
        ok = self.js(f"""new Promise(done => {{ const t0 = Date.now(); const tick = () => {{
            let v; try {{ v = ({condition}); }} catch (e) {{ v = false; }}
            if (v) return done(true); if (Date.now() - t0 > {limit_ms}) return done(false); setTimeout(tick, 100); }};
            tick(); }})""")
        assert ok, f"the page never showed {what}"

    def goto(self, url: str):
        self.call("Page.navigate", page=True, url=url)

    def screenshot(self, path: Path, element: str | None = None, margin: int = 8, top: str | None = None) -> None:
        """The page, or the box of `element` (from the top of `top`, when given)."""
        params: dict = {"format": "png"}
        if element:
            x, y, w, h = self.js(f"(() => {{ const r = ({element}).getBoundingClientRect(); "
                                 f"const t = ({top or 'null'}); const q = t ? t.getBoundingClientRect() : r; "
                                 "const x0 = Math.min(q.x, r.x), y0 = Math.min(q.y, r.y); "
                                 "return [x0 + scrollX, y0 + scrollY, Math.max(q.right, r.right) - x0, r.bottom - y0]; })()")
            params["clip"] = {"x": max(0, x - margin), "y": max(0, y - margin), "width": w + 2 * margin,
                              "height": h + 2 * margin, "scale": 1}
            params["captureBeyondViewport"] = True
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", page=True, **params)["data"]))

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._resp_r)
        shutil.rmtree(self.profile, ignore_errors=True)


def _leaf(text: str) -> str:
    """JS: the first element whose own text is exactly `text`."""
    return (f"[...document.querySelectorAll('*')].filter(e => e.children.length === 0 "
            f"&& e.textContent.trim() === {json.dumps(text)})[0]")


def _keep(shot: Path, name: str) -> None:
    """A test artifact in reports/views/; the README's copy in docs/ when asked."""
    assert shot.stat().st_size > 5_000, f"{shot} looks empty"
    if os.environ.get(DOCS_ENV) == "1":
        shutil.copy(shot, DOCS / name)


def _embedded(page: Path) -> dict[str, bytes]:
    return {n: base64.b64decode(b) for n, b in re.findall(r'd\("([^"]+)","([^"]*)"\)', page.read_text())}


def _result(results: Path, name: str) -> dict:
    return next(r for r in report.read_results(results) if r["name"] == name)


@pytest.fixture(scope="module")
def days(lab, gates, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-views")
    history = tmp / "history"
    day1 = gates("phase2 and readonly", alluredir=tmp / "day1")  # the whole daily bake job
    assert day1.results and not day1.failed(), day1.summary()
    report.render(tmp / "day1", tmp / "html1", history)
    day2 = gates(fault="bake-forgejo-near-oom-day3", scenario=BAKE, alluredir=tmp / "day2")
    assert day2.failed() == [NEAR_OOM], day2.summary()
    cutover = gates("phase3 and cluster and project", fault="cutover-template-old-image", alluredir=tmp / "day2")
    assert f"{FIRST_PROJECT} is cut over to Forgejo" in cutover.failed(), cutover.summary()
    assert not (day1.leaks or day2.leaks or cutover.leaks)
    rendered = report.render(tmp / "day2", tmp / "html2", history)
    assert len((history / "history.jsonl").read_text().splitlines()) == 2
    return {"results": tmp / "day2", "day1": tmp / "day1", "rendered": rendered, "lab": lab,
            "runs": (day1, day2, cutover)}


@pytest.fixture(scope="module")
def browser():
    proxy = _RefusingProxy()
    b = Browser(proxy.url)
    yield b
    b.close()
    proxy.shutdown()
    from_report = [r for r in proxy.seen if not CHROMIUM_OWN.match(r)]
    assert not from_report, f"the report made the browser call out: {from_report}"


def test_the_report_opens_on_the_trend_of_both_runs(days, browser):
    rendered = days["rendered"]
    # the page the report opens on: the dashboard's card (the trend) first, then the gates
    browser.goto(rendered.index.as_uri())
    browser.wait_for(_leaf("phasegate: trend across runs"), "the dashboard's card")
    cards = browser.js("(() => { const t = document.body.innerText; return [t.indexOf('Dashboard'), t.indexOf('Awesome')]; })()")
    assert -1 < cards[0] < cards[1], cards
    links = browser.js("[...document.querySelectorAll('a')].map(a => a.href)")
    # a run with Phase 3 rows: the gates' card opens on the cutover matrix
    assert rendered.pages["dashboard"].as_uri() in links, links
    assert rendered.pages["awesome"].as_uri() + "#globalAttachments" in links, links

    charts = json.loads(_embedded(rendered.pages["dashboard"])["widgets/charts.json"])["general"]
    trend = next(c for c in charts.values() if c["type"] == "statusDynamics")
    runs = [p["statistic"] for p in trend["data"]]
    day1, day2, cutover = days["runs"]
    assert runs[0] == {"total": len(day1.results), "passed": len(day1.results)}  # day 1, from the history
    red = len(day2.failed()) + len(cutover.failed())  # day 2: near OOM red, the wrong project's row (+ order)
    total = len(day2.results) + len(cutover.results)
    day2_run = runs[1:]
    assert len(day2_run) == 1 and day2_run[0]["total"] == total and day2_run[0]["failed"] == red, runs
    # the rest passed or, for the exit verdict while the window is open, pending (Allure's unknown)
    assert day2_run[0].get("passed", 0) + day2_run[0].get("unknown", 0) == total - red, runs

    browser.goto(rendered.pages["dashboard"].as_uri())  # where the dashboard's card leads
    # the widget: the title's nearest ancestor that holds the chart
    widget = f"(() => {{ let e = {_leaf(report.TREND_TITLE)}; while (e && !e.querySelector('svg')) e = e.parentElement; return e; }})()"
    browser.wait_for(f"{widget}.querySelectorAll('svg rect, svg path').length > 4", "the trend's bars")
    shot = SHOTS / "report-trend.png"
    browser.screenshot(shot, widget)
    _keep(shot, "report-trend.png")


def test_every_bake_criterion_carries_its_chart(days):
    """Day 1 ran the whole bake: each criterion step has its chart, the exit verdict one per criterion."""
    results = days["day1"]
    charts = {}
    for r in report.read_results(results):
        for step in r["steps"]:
            charts[step["name"]] = [a["name"] for a in step.get("attachments", []) if a["type"] == "image/png"]
    in_feature = re.findall(r'the bake criterion "([^"]+)" holds', (REPO / "features" / "phase2_bake.feature").read_text())
    judged = {n: c for n, c in charts.items() if n.startswith("Then the bake criterion ")}
    assert judged == {f'Then the bake criterion "{c}" holds': [f"Chart: {c}"] for c in in_feature}, judged
    exit_step = next(c for n, c in charts.items() if n == "Then every bake exit criterion holds")
    # one chart per criterion the exit verdict judges: every criterion step's, and the window's length
    assert {f"Chart: {c}" for c in in_feature} <= set(exit_step) and "Chart: bake long enough" in exit_step, exit_step
    for r in report.read_results(results):
        for step in r["steps"]:
            for a in step.get("attachments", []):
                if a["type"] == "image/png":
                    assert (results / a["source"]).read_bytes()[:4] == b"\x89PNG"


def test_a_bake_verdict_shows_the_chart_of_what_it_judged(days, browser):
    results = days["results"]
    for name in BAKE:  # red or green, every criterion carries its data and its chart
        step = _result(results, name)["steps"][-1]
        atts = [(a["name"], a["type"]) for a in step["attachments"]]
        assert ("criterion-data", "application/json") in atts and any(t == "image/png" for _, t in atts), atts
    step = _result(results, NEAR_OOM)["steps"][-1]
    data = next(a for a in step["attachments"] if a["name"] == "criterion-data")
    judged = json.loads((results / data["source"]).read_text())
    # the ratio working set / limit against 0.9 (the inventory's near_oom_ratio); the day-3 peak at 0.93,
    # every 2-minute sample of it offending
    assert judged["threshold"]["value"] == 0.9 and judged["offending"], judged
    assert all(v >= 0.9 for _, v in judged["offending"])

    page = days["rendered"].gates_page
    test_id = next(json.loads(v)["id"] for k, v in _embedded(page).items()
                   if k.startswith("data/test-results/") and json.loads(v)["name"] == NEAR_OOM)
    browser.goto(f"{page.as_uri()}#{test_id}")
    browser.wait_for(_leaf(CHART), "the chart attachment")
    browser.js(f"{_leaf(CHART)}.click()")
    image = "[...document.querySelectorAll('img')].find(i => i.naturalWidth === 900)"
    browser.wait_for(image, "the chart drawn inline")
    browser.js(f"{image}.scrollIntoView({{block: 'center'}})")
    shot = SHOTS / "report-bake-chart.png"
    # from the step that judged ("Then the bake criterion ... holds") down to the chart
    step = _leaf('Then the bake criterion "forgejo never near OOM" holds')
    browser.screenshot(shot, f"{image}.parentElement", top=step)
    _keep(shot, "report-bake-chart.png")


def test_the_phase3_report_shows_the_cutover_matrix_first(days, browser):
    rows = {r.project: r for r in report.cutover_matrix(report.read_results(days["results"]))}
    assert len(rows) == 10
    assert rows[FIRST_PROJECT].cells["template"].status == "failed"

    page = days["rendered"].gates_page
    html = next(v.decode() for k, v in _embedded(page).items() if k.startswith("data/attachments/")
                and b"<h3>Phase 3 cutover matrix</h3>" in v)
    assert FIRST_PROJECT in html and "\u2718 failed" in html

    browser.goto(page.as_uri())
    browser.wait_for("/Global Attachments\\s*3/.test(document.body.innerText)",
                     "the global attachments tab (the matrix as image, HTML, Markdown) on the first page")
    browser.goto(f"{page.as_uri()}#globalAttachments")  # where the summary page's card leads
    browser.wait_for(_leaf(report.MATRIX_NAME), "the matrix")
    assert browser.js(f"document.body.innerText.indexOf({json.dumps(report.MATRIX_NAME)}) "
                      f"< document.body.innerText.indexOf({json.dumps(report.MATRIX_NAME + ' (HTML)')})")
    browser.js(f"{_leaf(report.MATRIX_NAME)}.click()")
    image = "[...document.querySelectorAll('img')].find(i => i.naturalWidth > 400)"
    browser.wait_for(image, "the matrix drawn inline")
    shot = SHOTS / "report-cutover-matrix.png"
    # from the report's tabs (its first page) down to the matrix
    tabs = "[...document.querySelectorAll('*')].find(e => e.children.length && /^Results\\s*\\d+$/.test(e.textContent.trim()))"
    browser.screenshot(shot, f"{image}.parentElement", top=tabs)
    _keep(shot, "report-cutover-matrix.png")


def test_no_lab_secret_in_the_views(days):
    values = days["lab"].secret_values()
    leaks = leaks_in_tree(days["results"], values) + leaks_in_tree(days["rendered"].output, values)
    assert not leaks, leaks


def test_an_open_window_draws_today_and_what_is_still_to_come(days, gates, tmp_path):
    """The same lab with a 30-day bake: the window is open (today inside it), and the chart of the
    criterion judged today marks today, shades the days still to come and the days without data."""
    inv = tomllib.loads(days["lab"].inventory_path.read_text())
    inv["bake"]["days"] = 30
    longer = tmp_path / "inventory.toml"
    longer.write_text(tomli_w.dumps(inv))
    gates(scenario=NEAR_OOM, alluredir=tmp_path / "results", args=[f"--inventory={longer}"])
    step = _result(tmp_path / "results", NEAR_OOM)["steps"][-1]
    atts = {a["name"]: tmp_path / "results" / a["source"] for a in step["attachments"]}
    data = charts.CriterionData.from_json(atts["criterion-data"].read_text())
    assert data.window_open and data.window_end - data.window_start == 30 * 86400
    assert data.holes and data.holes[-1][1] == pytest.approx(data.now)  # no data from the history's end to now
    texts = " ".join(t.get_text() for t in charts.draw(data).findobj(lambda a: hasattr(a, "get_text")))
    assert "today (day " in texts and "of 30)" in texts and "still to come" in texts
    assert atts[CHART].read_bytes()[:4] == b"\x89PNG"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(atts[CHART], SHOTS / "report-bake-chart-open-window.png")
    _keep(SHOTS / "report-bake-chart-open-window.png", "report-bake-chart-open-window.png")
