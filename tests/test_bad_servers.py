"""Bad networks and bad servers: every client path ends with a one-line verdict, never a hang.

The servers are phasegate.lab.evil (raw sockets on loopback). Timeouts are the
client's configured ones, kept small here; the test never measures time
(speed goals live in benchmarks/): pytest-timeout is the hang backstop, and the
assertion is the verdict's type and words. Request counters prove that retries
never hide a 404 and that writes are never retried.
"""

from __future__ import annotations

import pytest
import trustme

from phasegate import http
from phasegate.lab import evil
from phasegate.secrets import Secret
from phasegate.verdict import Broken, ServerError, TimedOut, Unreachable, WriteRefused

# Small on purpose: a hang costs at most `total` per exchange.
SETTINGS = http.HttpSettings(connect=1.0, read=0.5, total=1.5, retries=2, backoff=0.05)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def client(closing):
    return lambda **kw: closing(http.client(SETTINGS, **kw))


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, f"verdict is not one line: {text!r}"
    assert "Traceback" not in text
    assert text.strip(), "empty verdict"
    return text


def get_all(c, url: str, method: str = "GET"):
    """What every module does: send, then read the whole body."""
    r = c.request(method, url)
    r.read()
    return r


# -- no answer ----------------------------------------------------------------


def test_server_that_never_answers_times_out(serve, client):
    s = serve(evil.hang())
    with pytest.raises(TimedOut) as e:
        get_all(client(), f"{s.url}/v2/")
    assert "no answer" in one_line(e.value)
    assert s.count("GET") == 1, "a read timeout is not retried (the server may still be working on it)"


def test_server_that_never_reads_times_out(serve, client):
    s = serve(evil.hang(), read_request=False)
    with pytest.raises(TimedOut) as e:
        get_all(client(), f"{s.url}/v2/")
    one_line(e.value)


def test_tls_server_that_never_handshakes_is_unreachable(serve, client, tmp_path):
    ca = trustme.CA()
    ctx = evil.tls_context(ca, "127.0.0.1")
    s = serve(evil.hang(), tls=ctx, handshake=False)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with pytest.raises(Unreachable) as e:
        get_all(client(ca_bundle=str(bundle)), f"{s.url}/v2/")
    assert "cannot connect" in one_line(e.value)


# -- slow answers: only the total deadline stops them --------------------------


def test_headers_dribbling_byte_by_byte_end_at_the_total_deadline(serve, client):
    s = serve(evil.dribble_headers(interval=0.02))
    with pytest.raises(TimedOut) as e:
        get_all(client(), f"{s.url}/v2/")
    assert "total timeout" in one_line(e.value)


def test_body_dribbling_byte_by_byte_ends_at_the_total_deadline(serve, client):
    s = serve(evil.dribble_body(interval=0.02))
    with pytest.raises(TimedOut) as e:
        get_all(client(), f"{s.url}/v2/")
    assert "total timeout" in one_line(e.value)


def test_streamed_body_dribbling_ends_at_the_total_deadline(serve, client):
    s = serve(evil.dribble_body(interval=0.02))
    with pytest.raises(TimedOut) as e:
        with client().stream("GET", f"{s.url}/v2/x/blobs/sha256:0") as r:
            for _ in r.iter_bytes():
                pass
    one_line(e.value)


# -- broken answers -------------------------------------------------------------


def test_connection_closed_mid_body_is_unreachable(serve, client):
    s = serve(evil.close_mid_body())
    with pytest.raises(Unreachable) as e:
        get_all(client(), f"{s.url}/v2/")
    assert "mid-body" in one_line(e.value)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_connection_closed_before_any_answer_is_retried_then_unreachable(serve, client, method):
    s = serve(lambda req, conn: None)  # read the request, close without a byte
    with pytest.raises(Unreachable) as e:
        get_all(client(), f"{s.url}/v2/", method)
    one_line(e.value)
    assert s.count(method) == 1 + SETTINGS.retries, "no answer came back: an idempotent read is sent again"


def test_read_that_loses_its_connection_once_gets_the_answer_on_retry(serve, client):
    # what a keep-alive connection closed under the request looks like (encode/httpcore#1110, idle timeouts)
    calls = []

    def first_closes(req, conn):
        calls.append(req.path)
        if len(calls) > 1:
            conn.respond(200, b'{"repositories":[]}')

    s = serve(first_closes)
    assert get_all(client(), f"{s.url}/v2/_catalog").json() == {"repositories": []}
    assert s.count("GET") == 2


def test_nothing_listening_is_unreachable(client):
    from phasegate.lab.procs import free_port

    with pytest.raises(Unreachable) as e:
        get_all(client(), f"http://127.0.0.1:{free_port()}/v2/")
    assert "cannot connect" in one_line(e.value)


# -- retries: reads on 502/503/504 only, never a 404, never a write ----------------


@pytest.mark.parametrize("code", [502, 503, 504])
def test_transient_5xx_is_retried_then_reported(serve, client, code):
    s = serve(evil.status(code))
    r = get_all(client(), f"{s.url}/v2/")
    assert r.status_code == code
    assert s.count("GET") == 1 + SETTINGS.retries
    verdict = http.status_error(r, "GET /v2/")
    assert isinstance(verdict, ServerError) and str(code) in one_line(verdict)


def test_500_is_an_answer_not_retried(serve, client):
    s = serve(evil.status(500))
    assert get_all(client(), f"{s.url}/v2/").status_code == 500
    assert s.count("GET") == 1


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_404_is_never_retried(serve, client, method):
    s = serve(evil.status(404))
    assert get_all(client(), f"{s.url}/v2/r/manifests/1", method).status_code == 404
    assert s.count(method) == 1, "a retry would hide a 404 behind a later answer"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_never_retried(serve, client, method):
    s = serve(evil.status(503))
    with http.GUARD.writes_allowed("test"):
        assert get_all(client(), f"{s.url}/v2/r/blobs/uploads/", method).status_code == 503
    assert s.count(method) == 1


def test_write_that_loses_its_connection_is_not_retried(serve, client):
    s = serve(lambda req, conn: None)
    with http.GUARD.writes_allowed("test"), pytest.raises(Unreachable) as e:
        get_all(client(), f"{s.url}/v2/r/blobs/uploads/", "POST")
    one_line(e.value)
    assert s.count("POST") == 1


def test_write_that_times_out_is_not_retried(serve, client):
    s = serve(evil.hang())
    with http.GUARD.writes_allowed("test"), pytest.raises(TimedOut):
        get_all(client(), f"{s.url}/v2/r/manifests/1", "PUT")
    assert s.count("PUT") == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_read_only_guard_refuses_writes_before_they_leave(serve, client, method):
    s = serve(evil.status(201))
    with pytest.raises(WriteRefused) as e:
        get_all(client(), f"{s.url}/v2/r/blobs/uploads/", method)
    assert "read-only" in one_line(e.value)
    assert s.connections == 0


# -- TLS ----------------------------------------------------------------------------


def test_tls_certificate_for_the_wrong_name(serve, client, tmp_path):
    ca = trustme.CA()
    s = serve(evil.status(200), tls=evil.tls_context(ca, "wrong-name.test"))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with pytest.raises(Unreachable) as e:
        get_all(client(ca_bundle=str(bundle)), f"{s.url}/v2/")
    msg = one_line(e.value)
    assert "certificate" in msg and "127.0.0.1" in msg
    assert s.count() == 0
    assert s.connections == 1, "a certificate that does not match is an answer, not a glitch: no retry"


def test_tls_certificate_from_an_unknown_ca(serve, client, tmp_path):
    trusted, unknown = trustme.CA(), trustme.CA()
    s = serve(evil.status(200), tls=evil.tls_context(unknown, "127.0.0.1"))
    bundle = tmp_path / "ca.pem"
    trusted.cert_pem.write_to_path(str(bundle))
    with pytest.raises(Unreachable) as e:
        get_all(client(ca_bundle=str(bundle)), f"{s.url}/v2/")
    assert "certificate" in one_line(e.value)
    assert s.count() == 0 and s.connections == 1


# -- credentials never reach a verdict ----------------------------------------------


@pytest.mark.parametrize("behaviour", [evil.hang(), evil.close_mid_body(), evil.dribble_headers(0.02)],
                         ids=["hang", "close-mid-body", "dribble-headers"])
def test_verdicts_never_carry_credentials(serve, client, behaviour):
    token = Secret("pgcanary-test-token-0123456789abcdef", "t")
    s = serve(behaviour)
    url = f"http://user:{token.reveal()}@127.0.0.1:{s.port}/v2/?token={token.reveal()}&n=1"
    with pytest.raises(Broken) as e:
        get_all(client(), url)
    msg = one_line(e.value)
    assert "pgcanary" not in msg and token.reveal() not in msg
    assert all("pgcanary" not in x.line() for x in http.TRANSCRIPT.since(0))


# -- the OCI client and the integrity walk ----------------------------------------

from phasegate import integrity, oci  # noqa: E402
from phasegate.images import OCI_MANIFEST  # noqa: E402

MANIFEST = evil.image_manifest()
ONE_REPO = {"/v2/_catalog": evil.body(b'{"repositories":["r"]}'), "/v2/r/tags/list": evil.body(b'{"name":"r","tags":["1"]}')}

TRANSPORT_FAULTS = {
    "hang": (evil.hang(), TimedOut),
    "dribble-headers": (evil.dribble_headers(0.02), TimedOut),
    "dribble-body": (evil.dribble_body(0.02, content_type="application/json"), TimedOut),
    "close-mid-body": (evil.close_mid_body(), Unreachable),
    "503": (evil.status(503), ServerError),
    "500": (evil.status(500), ServerError),
}

OCI_CALLS = {
    "ping": lambda c: c.ping(),
    "catalog": lambda c: c.catalog(),
    "tags": lambda c: c.tags("r"),
    "get_manifest": lambda c: c.get_manifest("r", "1"),
    "get_blob": lambda c: c.get_blob("r", evil.digest(b"x")),
    "verify_blob": lambda c: c.verify_blob("r", evil.digest(b"x")),
    "check_registry": lambda c: integrity.check_registry(c, concurrency=2),
}


@pytest.fixture
def registry(closing):
    return lambda url: closing(oci.RegistryClient(url, settings=SETTINGS))


@pytest.mark.parametrize("call", list(OCI_CALLS))
@pytest.mark.parametrize("fault", list(TRANSPORT_FAULTS))
def test_oci_client_ends_with_a_verdict(serve, registry, fault, call):
    behaviour, verdict = TRANSPORT_FAULTS[fault]
    s = serve(behaviour)
    with pytest.raises(verdict) as e:
        OCI_CALLS[call](registry(s.url))
    one_line(e.value)


@pytest.mark.parametrize("method", ["head_manifest", "head_blob"])
def test_oci_head_of_a_404_is_asked_once(serve, registry, method):
    s = serve(evil.status(404))
    assert getattr(registry(s.url), method)("r", evil.digest(b"x")).status == 404
    assert s.count("HEAD") == 1


def test_oci_get_of_a_404_is_asked_once(serve, registry):
    s = serve(evil.routes({}))
    with pytest.raises(oci.NotFound):
        registry(s.url).get_manifest("r", "1")
    assert s.count("GET", "/v2/r/") == 1


@pytest.mark.parametrize("payload", [b"{not json", b'["a list"]', b'{"repositories": "not a list"}', b""],
                         ids=["not-json", "json-list", "wrong-shape", "empty"])
def test_catalog_that_is_not_json_is_broken(serve, registry, payload):
    s = serve(evil.routes({"/v2/_catalog": evil.body(payload)}))
    with pytest.raises(oci.InvalidAnswer) as e:
        integrity.check_registry(registry(s.url))
    assert "catalog" in one_line(e.value)


def test_tag_list_that_is_not_json_is_broken(serve, registry):
    s = serve(evil.routes({**ONE_REPO, "/v2/r/tags/list": evil.body(b"<html>oops</html>", "text/html")}))
    with pytest.raises(oci.InvalidAnswer) as e:
        integrity.check_registry(registry(s.url))
    assert "not JSON" in one_line(e.value)


def test_manifest_that_is_not_json_is_a_broken_reference(serve, registry):
    s = serve(evil.routes({**ONE_REPO, "/v2/r/manifests/": evil.body(b"{not json", OCI_MANIFEST)}))
    result = integrity.check_registry(registry(s.url))
    (b,) = result.broken
    assert (b.repository, b.tag, b.kind, b.status) == ("r", "1", "manifest", "invalid-manifest")


def test_manifest_with_an_unknown_media_type_is_a_broken_reference(serve, registry):
    schema1 = b'{"schemaVersion":1,"name":"r","tag":"1","fsLayers":[]}'
    s = serve(evil.routes({**ONE_REPO, "/v2/r/manifests/": evil.body(schema1, "application/vnd.evil.unknown+json")}))
    (b,) = integrity.check_registry(registry(s.url)).broken
    assert b.status == "unknown-media-type application/vnd.evil.unknown+json"
    assert b.digest == evil.digest(schema1)


def test_digest_header_that_disagrees_with_the_body(serve, registry):
    lie = {"Docker-Content-Digest": evil.WRONG_DIGEST}
    s = serve(evil.routes({**ONE_REPO, "/v2/r/manifests/": evil.body(MANIFEST, OCI_MANIFEST, lie)}))
    c = registry(s.url)
    with pytest.raises(oci.DigestMismatch) as e:
        c.get_manifest("r", "1")
    assert evil.digest(MANIFEST) in str(e.value) and evil.WRONG_DIGEST in str(e.value)
    (b,) = integrity.check_registry(c).broken
    assert b.status == "digest-mismatch" and b.kind == "manifest"


def test_manifest_by_digest_whose_bytes_do_not_match(serve, registry):
    s = serve(evil.routes({**ONE_REPO, "/v2/r/manifests/": evil.body(MANIFEST, OCI_MANIFEST)}))
    with pytest.raises(oci.DigestMismatch):
        registry(s.url).get_manifest("r", evil.WRONG_DIGEST)


def test_blob_whose_bytes_do_not_match_its_digest(serve, registry):
    s = serve(evil.routes({"/v2/r/blobs/": evil.body(b"rotten", "application/octet-stream")}))
    c = registry(s.url)
    assert c.verify_blob("r", evil.digest(b"fresh")).status == "digest-mismatch"
    with pytest.raises(oci.DigestMismatch):
        c.get_blob("r", evil.digest(b"fresh"))


# -- the integrity command: exit 2 and one line, never a traceback -------------------


def _cli(url: str, *extra: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "phasegate.cli", "integrity", url, "--read-timeout", "0.5",
                           "--total-timeout", "2", "--concurrency", "2", *extra],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("fault", ["hang", "dribble-headers", "dribble-body", "close-mid-body", "503", "not-json"])
def test_integrity_cli_one_line_exit_2(serve, fault):
    behaviour = TRANSPORT_FAULTS[fault][0] if fault in TRANSPORT_FAULTS else evil.routes(
        {"/v2/_catalog": evil.body(b"{not json")})
    s = serve(behaviour)
    p = _cli(s.url)
    assert p.returncode == 2, p.stderr
    assert p.stdout == "" and "Traceback" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phasegate integrity: error:"), p.stderr


def test_integrity_cli_tls_wrong_name_one_line(serve, tmp_path):
    ca = trustme.CA()
    s = serve(evil.status(200), tls=evil.tls_context(ca, "wrong-name.test"))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    p = _cli(s.url, "--ca-bundle", str(bundle))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "certificate" in p.stderr


def test_integrity_cli_finds_a_lying_registry(serve):
    lie = {"Docker-Content-Digest": evil.WRONG_DIGEST}
    s = serve(evil.routes({**ONE_REPO, "/v2/r/manifests/": evil.body(MANIFEST, OCI_MANIFEST, lie)}))
    p = _cli(s.url, "--json")
    assert p.returncode == 1, p.stderr
    import json

    (b,) = json.loads(p.stdout)["broken"]
    assert b["status"] == "digest-mismatch"


# -- the Forgejo package API client -------------------------------------------------


from phasegate import forgejo  # noqa: E402

FORGEJO_CALLS = {
    "versions": lambda f: list(f.versions(q="smoketest")),
    "get": lambda f: f.get("smoketest", "1"),
    "delete": lambda f: f.delete("smoketest", "1"),
}


@pytest.fixture
def forgejo_api(closing):
    return lambda url: closing(forgejo.Forgejo.connect(url, Secret("pgcanary-forgejo-api-test-0123456789", "t"),
                                                       SETTINGS, owner="viktor", deletable={"smoketest"}))


@pytest.mark.parametrize("call", list(FORGEJO_CALLS))
@pytest.mark.parametrize("fault", ["hang", "dribble-headers", "close-mid-body", "503", "not-json", "wrong-shape",
                                   "echo"])
def test_forgejo_client_ends_with_a_verdict(serve, forgejo_api, fault, call):
    behaviour = {
        "not-json": evil.body(b"<html>502 from a proxy</html>", "text/html"),
        "wrong-shape": evil.body(b'[{"name": "smoketest"}]' if call == "versions" else b'{"id": "x"}'),
        "echo": evil.echo_credentials(),
    }.get(fault) or TRANSPORT_FAULTS[fault][0]
    s = serve(behaviour)
    if call == "delete" and fault in ("not-json", "wrong-shape"):
        with http.GUARD.writes_allowed("test"):  # a DELETE's answer is its status; the gate judges 200 != 204
            assert forgejo_api(s.url).delete("smoketest", "1") == 200
        return
    with http.GUARD.writes_allowed("test"), pytest.raises(Broken) as e:
        FORGEJO_CALLS[call](forgejo_api(s.url))
    assert "pgcanary" not in one_line(e.value)
    if call == "delete":
        assert s.count("DELETE") == 1, "a delete is never retried"


def test_forgejo_client_refuses_to_delete_outside_its_names(serve, forgejo_api):
    s = serve(evil.status(204))
    with http.GUARD.writes_allowed("test"):
        for name in ("payslip-ingest", "smoketest-other", "smoketes", "../smoketest", ""):
            with pytest.raises(forgejo.DeletionRefused):
                forgejo_api(s.url).delete(name, "1")
    assert s.connections == 0, "nothing reached the server"


# -- the Forgejo repository API client (Phase 1 pipelines) ------------------------------


@pytest.mark.parametrize("fault,call", [(f, c) for f in ("dribble-headers", "503", "not-json", "wrong-shape")
                                        for c in ("commits", "status", "raw")
                                        if not (c == "raw" and f in ("not-json", "wrong-shape"))])  # raw = any text
def test_forgejo_repos_client_ends_with_a_verdict(serve, fault, call):
    from phasegate.forgejo_repos import ForgejoRepos

    behaviour = {"not-json": evil.body(b"<html>proxy error</html>", "text/html"),
                 "wrong-shape": evil.body(b'[{"no-sha": 1}]' if call == "commits" else b'["a list"]')
                 }.get(fault) or TRANSPORT_FAULTS[fault][0]
    s = serve(behaviour)
    with ForgejoRepos.connect(s.url, Secret("pgcanary-repos-test-0123456789ab", "t"), SETTINGS) as repos:
        call_it = {"commits": lambda: repos.commits("viktor/infra"), "status": lambda: repos.status("viktor/infra", "a" * 40),
                   "raw": lambda: repos.raw("viktor/infra", ".woodpecker/default.yml")}[call]
        with pytest.raises(Broken) as e:
            call_it()
    assert "pgcanary" not in one_line(e.value)


def test_a_dribbling_server_stops_writing_when_its_client_leaves():
    """The header dribble ends with its client: a peer that gave up is not written to in a busy loop
    (it burnt a core for as long as the bad-server runs lasted)."""
    import socket
    import time

    with evil.EvilServer(evil.dribble_headers(0.001)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(64).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            handlers = server._threads[1:]  # the first is the accept loop; it adds a handler after starting it
            if handlers and not any(t.is_alive() for t in handlers):
                break
            time.sleep(0.05)
        assert handlers and not any(t.is_alive() for t in handlers), "the handler still writes to a closed peer"
