"""Bad servers behind the two API clients that are not registries: Kubernetes (the official client
through phasegate.kube's guarded transport) and Prometheus / the Pushgateway (phasegate.prometheus).

Same rules as tests/test_bad_servers.py: the servers are phasegate.lab.evil on
loopback, timeouts are small, pytest-timeout is the hang backstop, and the
assertion is the verdict's type and words: a `Broken` with one line, never a
raw exception from the client library, never "no data" for an answer that was
not data, and a 404 never retried.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import trustme

from phasegate import config, http
from phasegate.lab import evil
from phasegate.secrets import redact
from phasegate.verdict import AuthError, Broken, ServerError, TimedOut, Unreachable, WriteRefused

TIMEOUTS = config.Timeouts(connect=1.0, read=0.5, total=1.5, retries=2, backoff=0.05, poll_interval=0.05)
SETTINGS = http.HttpSettings.from_timeouts(TIMEOUTS)
# a plain string on purpose: only the kubeconfig knows it, so phasegate.kube must register it itself
KUBE_TOKEN = "pgcanary-kube-token-0123456789abcdef"

pytestmark = pytest.mark.timeout(60)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text.strip(), f"verdict is not one line: {text!r}"
    assert "pgcanary" not in text, f"a credential reached the verdict: {text!r}"
    return text


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


# -- Kubernetes ------------------------------------------------------------------------


@pytest.fixture
def kube(tmp_path, ca):
    """A phasegate.kube.Kube for a server URL, with a kubeconfig as the inventory would name it."""
    from phasegate.kube import Kube
    from phasegate.lab.kube import kubeconfig

    made = []

    def make(server: evil.EvilServer, trusted: trustme.CA | None = None) -> Kube:
        bundle = tmp_path / f"ca-{len(made)}.pem"
        (trusted or ca).cert_pem.write_to_path(str(bundle))
        path = kubeconfig(tmp_path / f"kubeconfig-{len(made)}", server=server.url, ca=bundle, token=KUBE_TOKEN)
        cluster = dataclasses.replace(config.Cluster(), kubeconfig=str(path), request_timeout=1.5)
        k = Kube.from_inventory(_Inv(cluster=cluster, timeouts=TIMEOUTS))
        made.append(k)
        return k

    yield make
    for k in made:
        k.close()


@dataclasses.dataclass(frozen=True)
class _Inv:
    """The two inventory sections Kube.from_inventory reads."""

    cluster: config.Cluster
    timeouts: config.Timeouts


def status_json(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                       "reason": reason, "code": code}).encode()


KUBE_CALLS = {
    "read deployment": lambda k: k.deployment("forgejo", "forgejo"),
    "list pods": lambda k: k.pods("forgejo"),
    "list nodes": lambda k: k.node_names(),
    "pod log": lambda k: k.pod_log("forgejo", "forgejo-0"),
}

KUBE_FAULTS = {
    "never answers": (evil.hang(), TimedOut, "answer"),
    "dribbles headers": (evil.dribble_headers(0.05), TimedOut, ""),
    "closes mid-body": (evil.close_mid_body(), Unreachable, ""),
    "answers 503": (evil.status(503, status_json(503, "ServiceUnavailable", "etcd is down"),
                                {"Content-Type": "application/json"}), ServerError, "503"),
    "answers 500": (evil.status(500, b"oops", {"Content-Type": "text/plain"}), ServerError, "500"),
    "refuses the token": (evil.status(401, status_json(401, "Unauthorized", "Unauthorized"),
                                      {"Content-Type": "application/json"}), AuthError, "401"),
    "invalid JSON": (evil.body(b'{"kind": "Deploy'), Broken, ""),
    "JSON of the wrong shape": (evil.body(b'["not", "an", "object"]'), Broken, ""),
}


# a pod log is text: any body is a valid log, so the JSON faults do not apply to it
KUBE_CASES = [(f, c) for f in KUBE_FAULTS for c in KUBE_CALLS if not (c == "pod log" and "JSON" in f)]


@pytest.mark.parametrize("fault,call", KUBE_CASES, ids=[f"{f}-{c}" for f, c in KUBE_CASES])
def test_kubernetes_api_fault_ends_with_a_one_line_verdict(serve, kube, ca, call, fault):
    behaviour, cls, words = KUBE_FAULTS[fault]
    s = serve(behaviour, tls=evil.tls_context(ca, "127.0.0.1"))
    with pytest.raises(Broken) as e:
        KUBE_CALLS[call](kube(s))
    assert isinstance(e.value, cls), f"{type(e.value).__name__}: {e.value}"
    assert words in one_line(e.value)
    assert s.count() >= 1


def test_kubernetes_read_timeout_is_not_retried(serve, kube, ca):
    s = serve(evil.hang(), tls=evil.tls_context(ca, "127.0.0.1"))
    with pytest.raises(TimedOut):
        kube(s).deployment("forgejo", "forgejo")
    assert s.count("GET") == 1


def test_kubernetes_404_is_an_answer_never_retried(serve, kube, ca):
    s = serve(evil.status(404, status_json(404, "NotFound", 'deployments.apps "forgejo" not found'),
                          {"Content-Type": "application/json"}), tls=evil.tls_context(ca, "127.0.0.1"))
    assert kube(s).deployment("forgejo", "forgejo") is None
    assert s.count("GET") == 1, "a retry would hide a 404 behind a later answer"


def test_kubernetes_connection_refused_is_retried_then_unreachable(kube, ca):
    from phasegate.lab.procs import free_port

    dead = evil.EvilServer(evil.hang())
    dead.port = free_port()  # never started: nothing listens there
    dead.tls = evil.tls_context(ca, "127.0.0.1")
    with pytest.raises(Unreachable) as e:
        kube(dead).deployment("forgejo", "forgejo")
    assert "cannot connect" in one_line(e.value)


@pytest.mark.parametrize("names,trusted", [(("wrong-name.test",), "ours"), (("127.0.0.1",), "unknown")],
                         ids=["wrong name", "unknown CA"])
def test_kubernetes_tls_certificate_problems_are_unreachable_without_retry(serve, kube, ca, names, trusted):
    server_ca = ca if trusted == "ours" else trustme.CA()
    s = serve(evil.status(200, b"{}"), tls=evil.tls_context(server_ca, *names))
    with pytest.raises(Unreachable) as e:
        kube(s, trusted=ca).deployment("forgejo", "forgejo")
    assert "certificate" in one_line(e.value)
    assert s.count() == 0


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_kubernetes_writes_are_refused_before_the_wire_unless_allowed(serve, kube, ca, method):
    s = serve(evil.status(201, b"{}"), tls=evil.tls_context(ca, "127.0.0.1"))
    k = kube(s)
    write = {"POST": lambda: k.create_namespace(k.fresh_name("probe")),
             "PATCH": lambda: k.rollout_restart("forgejo", "forgejo"),
             "DELETE": lambda: k.core.delete_namespace("phasegate-probe")}[method]
    with pytest.raises(WriteRefused) as e:
        write()
    assert "read-only" in one_line(e.value)
    assert s.connections == 0


def test_kubernetes_write_that_gets_503_is_not_retried(serve, kube, ca):
    s = serve(evil.status(503, status_json(503, "ServiceUnavailable", "busy"), {"Content-Type": "application/json"}),
              tls=evil.tls_context(ca, "127.0.0.1"))
    k = kube(s)
    with http.GUARD.writes_allowed("test"), pytest.raises(ServerError):
        k.create_namespace(k.fresh_name("probe"))
    assert s.count("POST") == 1


def test_kubernetes_error_text_never_carries_the_token(serve, kube, ca):
    s = serve(evil.echo_credentials(), tls=evil.tls_context(ca, "127.0.0.1"))
    with pytest.raises(Broken) as e:
        kube(s).deployment("forgejo", "forgejo")
    one_line(e.value)


def test_the_kubeconfig_token_is_redacted_wherever_it_appears(serve, kube, ca):
    """Not only after "Bearer": a server may quote the bare token (found by the gate-level canary run)."""
    kube(serve(evil.hang(), tls=evil.tls_context(ca, "127.0.0.1")))
    assert KUBE_TOKEN not in redact(f"token {KUBE_TOKEN} refused"), "building the client registers the token"


# -- Prometheus and the Pushgateway ------------------------------------------------------


@pytest.fixture
def prometheus(closing):
    from phasegate.prometheus import Prometheus, Pushgateway

    def make(server: evil.EvilServer, kind: str = "prometheus", ca_bundle: str = ""):
        return closing((Prometheus if kind == "prometheus" else Pushgateway)(server.url, SETTINGS, ca_bundle=ca_bundle))

    return make


def prom_ok(data: dict) -> bytes:
    return json.dumps({"status": "success", "data": data}).encode()


PROM_CALLS = {
    "instant query": lambda p: p.query("up"),
    "range query": lambda p: p.query_range("up", 1_700_000_000, 1_700_003_600, 60),
    "raw samples": lambda p: p.raw_samples("up", 1_700_000_000, 1_700_003_600),
    "now": lambda p: p.now(),
    "alert rules": lambda p: p.alert_rules(),
}

PROM_FAULTS = {
    "never answers": (evil.hang(), TimedOut),
    "dribbles headers": (evil.dribble_headers(0.05), TimedOut),
    "dribbles the body": (evil.dribble_body(0.05, content_type="application/json"), TimedOut),
    "closes mid-body": (evil.close_mid_body(), Unreachable),
    "answers 503": (evil.status(503), ServerError),
    "answers 500 with an error": (evil.body(b'{"status":"error","errorType":"internal","error":"boom"}', code=500),
                                  ServerError),
    "invalid JSON": (evil.body(b'{"status":"succ'), Broken),
    "not Prometheus (HTML)": (evil.body(b"<html>login</html>", content_type="text/html"), Broken),
    "success without data": (evil.body(b'{"status":"success"}'), Broken),
    "a result of the wrong shape": (evil.body(prom_ok({"resultType": "vector", "result": [{"metric": {}}]})), Broken),
    "a sample that is not a number": (evil.body(prom_ok({"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1_700_000_000, "many"]]}]})), Broken),
    "an unknown result type": (evil.body(prom_ok({"resultType": "hologram", "result": []})), Broken),
    "a null result": (evil.body(prom_ok({"resultType": "vector", "result": None, "groups": None})), Broken),
    "rule groups of the wrong shape": (evil.body(prom_ok({"groups": [{"rules": "none"}], "resultType": "vector",
                                                          "result": 7})), Broken),
}


@pytest.mark.parametrize("call", list(PROM_CALLS))
@pytest.mark.parametrize("fault", list(PROM_FAULTS))
def test_prometheus_fault_ends_with_a_one_line_verdict(serve, prometheus, call, fault):
    behaviour, cls = PROM_FAULTS[fault]
    s = serve(behaviour)
    with pytest.raises(Broken) as e:
        PROM_CALLS[call](prometheus(s))
    assert isinstance(e.value, cls), f"{type(e.value).__name__}: {e.value}"
    one_line(e.value)


def test_prometheus_bad_query_is_a_promql_error_not_no_data(serve, prometheus):
    from phasegate.prometheus import PromQLError

    s = serve(evil.body(b'{"status":"error","errorType":"bad_data","error":"parse error at char 3"}', code=400))
    with pytest.raises(PromQLError) as e:
        prometheus(s).query("up{")
    assert "parse error" in one_line(e.value)
    assert s.count("GET") == 1


def test_prometheus_404_is_never_retried(serve, prometheus):
    s = serve(evil.status(404, b"404 page not found", {"Content-Type": "text/plain"}))
    with pytest.raises(Broken) as e:
        prometheus(s).query("up")
    assert "404" in one_line(e.value)
    assert s.count("GET") == 1


def test_prometheus_empty_result_is_data_not_an_error(serve, prometheus):
    """The one answer that is "no data": a gate turns it into a failure, the client must not hide it."""
    s = serve(evil.body(prom_ok({"resultType": "vector", "result": []})))
    assert prometheus(s).query("up").empty


def test_prometheus_tls_from_an_unknown_ca_is_unreachable(serve, prometheus, ca, tmp_path):
    s = serve(evil.body(prom_ok({"resultType": "vector", "result": []})),
              tls=evil.tls_context(trustme.CA(), "127.0.0.1"))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with pytest.raises(Unreachable) as e:
        prometheus(s, ca_bundle=str(bundle)).query("up")
    assert "certificate" in one_line(e.value)


PGW_FAULTS = {
    "never answers": (evil.hang(), TimedOut),
    "answers 503": (evil.status(503), ServerError),
    "answers 404": (evil.status(404), Broken),
    "invalid JSON": (evil.body(b'{"data": ['), Broken),
    "groups of the wrong shape": (evil.body(b'{"data": ["a group"]}'), Broken),
    "a value that is not a number": (evil.body(json.dumps({"data": [{"labels": {"job": "x"}, "up": {
        "metrics": [{"labels": {}, "value": "lots"}]}}]}).encode()), Broken),
}


@pytest.mark.parametrize("fault", list(PGW_FAULTS))
def test_pushgateway_fault_ends_with_a_one_line_verdict(serve, prometheus, fault):
    behaviour, cls = PGW_FAULTS[fault]
    s = serve(behaviour)
    with pytest.raises(Broken) as e:
        prometheus(s, "pushgateway").groups()
    assert isinstance(e.value, cls), f"{type(e.value).__name__}: {e.value}"
    one_line(e.value)
