"""The Loki and Uptime Kuma clients against their lab stand-ins: the documented wire formats, paging,
errors as verdicts, the read-only guard, redaction."""

from __future__ import annotations

import time

import httpx
import pytest

from phasegate.http import GUARD, TRANSCRIPT, HttpSettings
from phasegate.lab import evil
from phasegate.lab.loki import LokiStandin
from phasegate.lab.uptime_kuma import UptimeKumaStandin
from phasegate.loki import Loki, LokiError
from phasegate.secrets import Secret
from phasegate.uptime_kuma import UptimeKuma, UptimeKumaError, parse_time
from phasegate.verdict import AuthError, Broken, ServerError, TimedOut, Unreachable, WriteRefused

SETTINGS = HttpSettings(connect=2, read=5, total=30, retries=1, backoff=0.05)


@pytest.fixture
def loki():
    s = LokiStandin()
    s.start()
    yield s
    s.stop()


@pytest.fixture
def kuma():
    s = UptimeKumaStandin(password="pgcanary-kuma-0123456789")
    s.start()
    yield s
    s.stop()


def _push(loki: LokiStandin, labels: dict, entries: list[tuple[float, str]]):
    body = {"streams": [{"stream": labels, "values": [[str(int(t * 1e9)), line] for t, line in entries]}]}
    assert httpx.post(f"{loki.url}/loki/api/v1/push", json=body, timeout=5).status_code == 204


def test_loki_lines_of_a_selector_with_a_line_filter_paged_forward(loki):
    t0 = 1_780_000_000
    labels = {"namespace": "forgejo", "pod": "forgejo-cleanup-29600000-x1", "container": "cleanup",
              "job": "forgejo/cleanup"}
    _push(loki, labels, [(t0 + i, f"  deleted app:{i}") for i in range(25)] + [(t0 + 30, "Summary: kept=1 to_delete=25 dry_run=false")])
    _push(loki, {**labels, "container": "other", "job": "forgejo/other"}, [(t0 + 1, "Summary: other")])
    with Loki(loki.url, SETTINGS) as client:
        got = client.lines('{namespace="forgejo", job="forgejo/cleanup"} |= "deleted"', t0, t0 + 60, page=10)
        assert [x.line for x in got] == [f"  deleted app:{i}" for i in range(25)]  # three pages, nothing lost
        assert got[0].label("pod") == labels["pod"] and got[0].t == t0
        summary = client.lines('{namespace="forgejo", container=~"clean.*"} |~ "^Summary: "', t0, t0 + 60)
        assert [x.line for x in summary] == ["Summary: kept=1 to_delete=25 dry_run=false"]
        with pytest.raises(LokiError, match="HTTP 400"):
            client.lines('namespace="forgejo"', t0, t0 + 60)


def test_loki_client_sends_only_reads(loki):
    with Loki(loki.url, SETTINGS) as client:
        mark = loki.mark()
        client.lines('{namespace="forgejo"}', 0, 10)
    assert loki.requests[mark:] and loki.writes(mark) == []


def test_uptime_kuma_history_of_a_monitor_over_socket_io(kuma):
    now = time.time()
    mid = kuma.add_monitor("[External] forgejo", "https://forgejo.viktorbarzin.me/api/healthz")
    kuma.add_monitor("[External] other", "https://other.test/")
    kuma.set_beats(mid, [(now - 3 * 86400, 1, "200 - OK"), (now - 7200, 0, "Request failed with status code 502"),
                         (now - 600, 1, "200 - OK")])
    with UptimeKuma(kuma.url, SETTINGS, username="admin", password=Secret(kuma.password)) as client:
        monitor, beats = client.history("[External] forgejo", since=now - 86400, now=now)
    assert monitor.id == mid and monitor.interval == 300
    assert [(b.state, b.msg) for b in beats] == [("DOWN", "Request failed with status code 502"), ("UP", "200 - OK")]
    assert abs(beats[0].t - (now - 7200)) < 0.01
    assert kuma.refused_events == []


def test_uptime_kuma_wrong_password_is_an_auth_error_and_the_password_never_shows(kuma):
    mark = TRANSCRIPT.mark()
    with UptimeKuma(kuma.url, SETTINGS, username="admin", password=Secret("pgcanary-wrong-0123456789")) as client:
        with pytest.raises(AuthError, match="login as 'admin' refused") as e:
            client.login()
    assert "pgcanary" not in str(e.value)
    exchanges = TRANSCRIPT.render(TRANSCRIPT.since(mark))
    assert "POST" in exchanges and "pgcanary" not in exchanges  # bodies are not recorded, URLs carry no secret


def test_uptime_kuma_client_refuses_a_writing_event_in_a_read_only_gate(kuma):
    GUARD.set(False)
    with UptimeKuma(kuma.url, SETTINGS, username="admin", password=Secret(kuma.password)) as client:
        client.login()
        mark = kuma.mark()
        with pytest.raises(WriteRefused, match="deleteMonitor"):
            client.emit("deleteMonitor", 1)
    assert kuma.writes(mark) == []  # it never left the process


def test_heartbeat_times_from_sqlite_and_mariadb():
    assert parse_time("2026-06-09 14:00:00.123") == pytest.approx(1781013600.123)
    assert parse_time("2026-06-09T14:00:00.000Z") == 1781013600.0


# -- bad servers: every fault ends with a one-line verdict -------------------------------------

BAD = {
    "never answers": (evil.hang(), TimedOut),
    "answers 503": (evil.status(503), ServerError),
    "closes mid-body": (evil.close_mid_body(), Unreachable),
    "not the API (HTML)": (evil.body(b"<html>login</html>", content_type="text/html"), Broken),
    "invalid JSON": (evil.body(b'{"status":"succ'), Broken),
}
FAST = HttpSettings(connect=1, read=1, total=4, retries=1, backoff=0.05)


@pytest.mark.parametrize("fault", list(BAD))
def test_loki_bad_server_is_a_verdict(serve, fault):
    behaviour, cls = BAD[fault]
    s = serve(behaviour)
    with Loki(s.url, FAST) as client, pytest.raises(Broken) as e:
        client.lines('{namespace="forgejo"}', 0, 10)
    assert isinstance(e.value, cls) and "\n" not in str(e.value), f"{type(e.value).__name__}: {e.value}"


@pytest.mark.parametrize("fault", list(BAD))
def test_uptime_kuma_bad_server_is_a_verdict(serve, fault):
    behaviour, cls = BAD[fault]
    s = serve(behaviour)
    if cls is Broken:
        cls = UptimeKumaError  # a 200 that is not an Engine.IO open packet
    with UptimeKuma(s.url, FAST, username="admin", password=Secret("pgcanary-k-0123456789")) as client, \
            pytest.raises(Broken) as e:
        client.login()
    assert isinstance(e.value, cls) and "pgcanary" not in str(e.value), f"{type(e.value).__name__}: {e.value}"


def test_loki_404_is_an_answer_never_retried(serve):
    s = serve(evil.status(404))
    with Loki(s.url, FAST) as client, pytest.raises(LokiError, match="HTTP 404"):
        client.lines('{namespace="forgejo"}', 0, 10)
    assert s.count("GET") == 1
