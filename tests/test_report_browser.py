"""The report a reviewer reads, checked in a real browser (Debian chromium, headless).

The Phase 0 registry gates run against the lab twice into one results folder:
- with the known fault `forgejo-puller-can-push` (the pull secret holds a PAT that can
  push): two gates pass, "The puller can pull but is refused a push" fails;
- with Forgejo unreachable (the inventory points at a loopback port nobody listens on): the
  login gate cannot be judged.
`phasegate report` renders the HTML, and chromium opens it from file://. The overview must show
2 passed, 1 failed, 1 broken; the failed gate must be a *Product defect* carrying the fault's
evidence (the redacted HTTP exchanges with the push the registry accepted); the unreachable
one must be *Test broken*. No lab secret may appear in the results or the HTML, and the
report must not make the browser fetch anything from outside (a refusing proxy on loopback
records every request the browser would send out). Screenshots go to reports/.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from pathlib import Path

import pytest
import tomli_w

from phasegate.lab.procs import free_port
from tests import REPO
from tests.canary import leaks_in_tree

SHOTS = REPO / "reports"

FAULT = "forgejo-puller-can-push"
DEFECT = "The puller can pull but is refused a push"
PASSING = ["The smoke image pushed by the pusher is pullable by the puller",
           "The cleaner deletes the smoke package through the package API"]
UNREACHABLE = "Registry login as the pusher succeeds"

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-default-apps",
                  "--disable-domain-reliability", "--no-default-browser-check"]
# What chromium itself asks for even with the flags above (clock, updates, sign-in): the
# proxy refuses these too; anything else would come from the report.
CHROMIUM_OWN = re.compile(r"^(CONNECT |GET |POST )?(https?://)?[a-z0-9.-]*(google\.com|googleapis\.com|gvt1\.com)[:/]")

pytestmark = [pytest.mark.lab, pytest.mark.slow]


class _RefusingProxy(http.server.ThreadingHTTPServer):
    """An HTTP proxy on loopback that forwards nothing: it records what the browser tried."""

    def __init__(self):
        self.seen: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def _refuse(h):
                self.seen.append(f"{h.command} {h.path}")
                h.send_response(403)
                h.send_header("Content-Length", "0")
                h.end_headers()

            do_GET = do_POST = do_HEAD = do_PUT = do_CONNECT = do_OPTIONS = _refuse

            def log_message(h, *a):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _chromium(url: str, proxy: str, *, dump: bool = False, screenshot: Path | None = None, shown: str = "",
             budget_ms: int = 6000) -> str:
    """The page's DOM (`dump`) or a screenshot. A dump that does not show `shown` is taken again with twice the
    virtual time, twice at most (a snapshot is a read): with three browsers at once on a busy machine, full runs
    saw an overview not yet rendered and a result page that said "Failed to fetch"."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium not installed: run scripts/setup.sh (Debian package chromium)")
    with tempfile.TemporaryDirectory(prefix="phasegate-chromium-") as profile:
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--proxy-server={proxy}",
                "--window-size=1400,1300", f"--virtual-time-budget={budget_ms}"]
        argv += ["--dump-dom"] if dump else [f"--screenshot={screenshot}"]
        proc = subprocess.run([*argv, url], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    if dump and shown and shown not in proc.stdout and shown not in _text(proc.stdout) and budget_ms < 4 * 6000:
        return _chromium(url, proxy, dump=True, shown=shown, budget_ms=2 * budget_ms)
    return proc.stdout


def _text(dom: str) -> str:
    body = re.sub(r"<script.*?</script>|<style.*?</style>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def _overview_counts(dom: str) -> dict[str, int]:
    counts = {}
    for name in ("total", "passed", "failed", "broken"):
        m = re.search(rf'data-testid="metadata-item-{name}".*?<span[^>]*>(\d+)</span>', dom, flags=re.S)
        assert m, f"overview has no {name} count"
        counts[name] = int(m.group(1))
    return counts


def _embedded(index: Path) -> dict[str, object]:
    """The report data the single file carries (what the page renders from)."""
    html = index.read_text()
    out = {}
    for name, b64 in re.findall(r'd\("([^"]+)","([^"]*)"\)', html):
        if name.endswith(".json"):
            out[name] = json.loads(base64.b64decode(b64))
    return out


@pytest.fixture(scope="module")
def rendered(lab, gates, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-browser")
    results = tmp / "allure-results"
    run = gates(fault=FAULT, scenario=[DEFECT, *PASSING], alluredir=results)
    assert sorted(run.passed()) == sorted(PASSING) and run.failed() == [DEFECT], run.summary()

    inv = tomllib.loads(lab.inventory_path.read_text())
    inv["forgejo"]["url"] = f"https://127.0.0.1:{free_port()}"  # nobody listens there
    unreachable = tmp / "unreachable.toml"
    unreachable.write_text(tomli_w.dumps(inv))
    run = gates(scenario=UNREACHABLE, alluredir=results, args=[f"--inventory={unreachable}"])
    assert run.failed() == [UNREACHABLE], run.summary()

    html = tmp / "html"
    proc = subprocess.run([sys.executable, "-m", "phasegate.cli", "report", "--results", str(results),
                           "--output", str(html), "--history", str(tmp / "history")],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report (allure3): {html / 'index.html'}"
    # the summary page opens first; the gates are in the awesome report beside the dashboard
    return {"results": results, "index": html / "awesome" / "index.html", "lab": lab}


def test_the_report_in_a_browser_shows_the_fault_as_a_product_defect_and_unreachable_as_broken(rendered):
    index = rendered["index"]
    data = _embedded(index)
    ids = {d["name"]: d["id"] for k, d in data.items() if k.startswith("data/test-results/")}
    assert set(ids) == {DEFECT, *PASSING, UNREACHABLE}, sorted(ids)
    url = index.as_uri()
    proxy = _RefusingProxy()
    SHOTS.mkdir(exist_ok=True)
    try:
        jobs = {
            "overview": dict(url=url, dump=True, shown='data-testid="metadata-item-total"'),
            "defect": dict(url=f"{url}#{ids[DEFECT]}", dump=True, shown="Category: Product defects"),
            "broken": dict(url=f"{url}#{ids[UNREACHABLE]}", dump=True, shown="Category: Test broken"),
            "overview.png": dict(url=url, screenshot=SHOTS / "report-overview.png"),
            "defect.png": dict(url=f"{url}#{ids[DEFECT]}", screenshot=SHOTS / "report-product-defect.png"),
        }
        for shot in (SHOTS / "report-overview.png", SHOTS / "report-product-defect.png"):
            shot.unlink(missing_ok=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            futures = {k: pool.submit(_chromium, v.pop("url"), proxy.url, **v) for k, v in jobs.items()}
            out = {k: f.result() for k, f in futures.items()}
    finally:
        proxy.shutdown()

    assert _overview_counts(out["overview"]) == {"total": 4, "passed": 2, "failed": 1, "broken": 1}

    defect = _text(out["defect"])
    assert DEFECT in defect and "Failed" in defect
    assert "Category: Product defects" in defect
    assert "HTTP exchanges (redacted)" in defect  # the fault's evidence: the push the registry took
    assert "Plan: Phase 0 — Prepare Forgejo" in defect

    broken = _text(out["broken"])
    assert UNREACHABLE in broken and "Category: Test broken" in broken
    assert "Why the gate could not be judged" in broken

    for shot in ("report-overview.png", "report-product-defect.png"):
        assert (SHOTS / shot).stat().st_size > 20_000, f"{shot} looks empty"

    from_report = [r for r in proxy.seen if not CHROMIUM_OWN.match(r)]
    assert not from_report, f"the report made the browser call out: {from_report}"


def test_the_fault_evidence_is_in_the_failed_step(rendered):
    """The attachment the page lists holds the evidence: the accepted push, credentials redacted."""
    results = rendered["results"]
    defect = next(json.loads(p.read_text()) for p in results.glob("*-result.json")
                  if json.loads(p.read_text())["name"] == DEFECT)
    step = next(s for s in defect["steps"] if s["status"] == "failed")
    atts = {a["name"]: (results / a["source"]).read_text() for a in step["attachments"]}
    exchanges = atts["HTTP exchanges (redacted)"]
    assert re.search(r"^(PUT|POST|PATCH) \S+/v2/\S+ -> 20[12]", exchanges, flags=re.M), exchanges
    assert "Bearer ***" in exchanges or "Basic ***" in exchanges


def test_no_lab_secret_in_the_results_or_the_html(rendered):
    values = rendered["lab"].secret_values()
    leaks = leaks_in_tree(rendered["results"], values) + leaks_in_tree(rendered["index"].parent.parent, values)
    assert not leaks, leaks
    # the single file embeds attachments base64-encoded: look inside them as well
    html = "".join(p.read_text() for p in rendered["index"].parent.parent.rglob("index.html"))
    decoded = "\n".join(base64.b64decode(b).decode("utf-8", "replace")
                        for _, b in re.findall(r'd\("([^"]+)","([^"]*)"\)', html))
    assert "pgcanary" not in decoded and "pgcanary" not in html
