"""Every gate of every phase, pointed at a bad server, ends with a one-line verdict: no hang, no traceback, no leak.

The lab inventory is copied with every http(s) URL, and the kubeconfig's API
server, replaced by one phasegate.lab.evil server (and small timeouts), then
all gates run as a user runs them (tests/harness.py: junit, Allure results and
cache are searched for the lab's secrets). Gates that never touch HTTP (static files, the VM over SSH)
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
# a server that answers at once gets time to: on a loaded machine half a second is not always enough, and a
# timeout there would be the machine's, not the verdict this test is about
ANSWERING = {**TIMEOUTS, "read": 5.0, "total": 10.0}

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(900)]


def rewrite_urls(node, url: str):
    """Every http(s) URL in the inventory -> `url` (host names used in image references stay)."""
    if isinstance(node, dict):
        return {k: rewrite_urls(v, url) for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_urls(v, url) for v in node]
    if isinstance(node, str) and node.startswith(("http://", "https://")):
        return url
    return node


def bad_kubeconfig(path: str, tmp_path, url: str) -> str:
    """The lab's kubeconfig with its API server replaced by `url` (the token stays: it must not leak)."""
    import yaml

    cfg = yaml.safe_load(open(path).read())
    for c in cfg["clusters"]:
        c["cluster"] = {"server": url}
    out = tmp_path / "bad-server-kubeconfig"
    out.write_text(yaml.safe_dump(cfg))
    return str(out)


def bad_inventory(lab, tmp_path, url: str, timeouts: dict = TIMEOUTS):
    raw = tomllib.loads(lab.inventory_path.read_text())
    raw = rewrite_urls(raw, url)
    raw["timeouts"] = {**raw.get("timeouts", {}), **timeouts}
    raw["cluster"] = {**raw["cluster"], "kubeconfig": bad_kubeconfig(raw["cluster"]["kubeconfig"], tmp_path, url),
                      "request_timeout": timeouts["total"], "wait_timeout": 3.0}
    path = tmp_path / "bad-server-inventory.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


BEHAVIOURS = {
    "echoes-credentials": evil.echo_credentials,
    "dribbles-headers": lambda: evil.dribble_headers(0.02),
    "never-answers": evil.hang,
    "answers-503": lambda: evil.status(503),
}
# a server that dribbles its headers is only ever stopped by the total deadline (each byte comes within the
# read timeout): every request of that run takes `total`, so it gets the least that is still above `read`
DRIBBLED = {**TIMEOUTS, "total": 0.7}
TIMEOUTS_OF = {"echoes-credentials": ANSWERING, "answers-503": ANSWERING, "dribbles-headers": DRIBBLED}


@pytest.fixture(scope="module")
def bad_server_runs(lab, gates, tmp_path_factory):
    """All gates against each bad server, the runs side by side.

    Safe to run at once: every URL and the Kubernetes API of these runs point at
    their own bad server, so no run writes to the shared lab; the runs mostly
    wait on timeouts, so together they take about as long as the slowest.
    """
    from concurrent.futures import ThreadPoolExecutor

    servers = {b: evil.EvilServer(make()).start() for b, make in BEHAVIOURS.items()}
    try:
        def run(behaviour):
            inventory = bad_inventory(lab, tmp_path_factory.mktemp(behaviour), servers[behaviour].url,
                                      TIMEOUTS_OF.get(behaviour, TIMEOUTS))
            return gates(ALL_PHASES, args=[f"--inventory={inventory}", "--timeout=120"], timeout=850)

        with ThreadPoolExecutor(len(servers)) as pool:
            runs = dict(zip(servers, pool.map(run, servers), strict=False))
    finally:
        for server in servers.values():
            server.stop()
    return {b: (runs[b], servers[b].count()) for b in servers}


@pytest.mark.parametrize("behaviour", list(BEHAVIOURS))
def test_every_gate_ends_with_a_verdict(bad_server_runs, behaviour):
    run, requests_seen = bad_server_runs[behaviour]
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
    assert requests_seen > 0, "the gates never reached the bad server: the rewrite missed their URLs"
