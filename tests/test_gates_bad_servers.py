"""Every gate of every phase, pointed at a bad server, ends with a one-line verdict: no hang, no traceback, no leak.

The lab inventory is copied with every http(s) URL replaced by one
phasegate.lab.evil server (and small timeouts), then all gates run as a user
runs them (tests/harness.py: junit, Allure results and cache are searched for
the lab's secrets). Gates that never touch HTTP (static files, the cluster)
may pass; every other one must be red with a verdict: `FAILED: expected /
seen / where` or `BROKEN (<kind>): ...`. pytest-timeout inside the run is the
hang backstop (a timeout is not a verdict, so it fails this test).
"""

from __future__ import annotations

import tomllib

import pytest
import tomli_w

from phasegate.lab import evil

ALL_PHASES = " or ".join(f"phase{i}" for i in range(6))
TIMEOUTS = {"connect": 1.0, "read": 0.5, "total": 1.5, "retries": 1, "backoff": 0.05, "poll_interval": 0.1}

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]


def rewrite_urls(node, url: str):
    """Every http(s) URL in the inventory -> `url` (host names used in image references stay)."""
    if isinstance(node, dict):
        return {k: rewrite_urls(v, url) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_urls(v, url) for v in node]
    if isinstance(node, str) and node.startswith(("http://", "https://")):
        return url
    return node


def bad_inventory(lab, tmp_path, url: str):
    raw = tomllib.loads(lab.inventory_path.read_text())
    raw = rewrite_urls(raw, url)
    raw["timeouts"] = {**raw.get("timeouts", {}), **TIMEOUTS}
    path = tmp_path / "bad-server-inventory.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


BEHAVIOURS = {
    "echoes-credentials": evil.echo_credentials,
    "dribbles-headers": lambda: evil.dribble_headers(0.02),
    "never-answers": evil.hang,
    "answers-503": lambda: evil.status(503),
}


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
def test_every_gate_ends_with_a_verdict(lab, gates, tmp_path, behaviour):
    server = evil.EvilServer(BEHAVIOURS[behaviour]()).start()
    try:
        inventory = bad_inventory(lab, tmp_path, server.url)
        run = gates(ALL_PHASES, args=[f"--inventory={inventory}", "--timeout=120"], timeout=850)
    finally:
        server.stop()
    assert run.results, f"no gates collected\n{run.summary()}"
    assert not run.leaks, f"secrets leaked: {run.leaks}"
    assert "Traceback" not in run.stdout + run.stderr, run.stdout[-3000:]
    red = [r for r in run.results if r["outcome"] in ("failed", "error")]
    assert red, f"no gate noticed a registry that {behaviour}\n{run.summary()}"
    for r in red:
        msg = r["message"]
        assert msg.startswith(("FAILED: ", "BROKEN (")), f"{r['scenario']}: not a verdict:\n{msg[:2000]}"
        assert "Timeout" not in msg.split("\n", 1)[0] or "BROKEN (TimedOut)" in msg, msg
        assert "Traceback" not in msg and "Error: " not in msg.split(":", 1)[0], msg
    assert server.count() > 0, "the gates never reached the bad server: the rewrite missed their URLs"
