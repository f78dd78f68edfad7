"""Bearer auth the distribution way: a real registry with `auth: token` and a small token issuer.

distribution asks per repository and action (`repository:app:pull`, then
`repository:app:pull,push` for a push); the client must cache one token per
scope, reuse it, and re-ask once when a wider action is challenged.
"""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import urllib.parse
import uuid

import jwt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from phasegate import http as phttp
from phasegate import images
from phasegate.integrity import check_registry
from phasegate.lab.distribution import DistributionRegistry
from phasegate.lab.procs import free_port
from phasegate.oci import RegistryClient
from phasegate.secrets import Secret
from phasegate.verdict import AuthError

pytestmark = pytest.mark.lab

SERVICE = "phasegate-test-registry"
USERS = {"writer": ("pgcanary-writer-pass", {"pull", "push", "delete", "*"}), "reader": ("pgcanary-reader-pass", {"pull", "*"})}


class Issuer:
    """GET /token?service=&scope=: a JWT granting the asked actions the user may have."""

    def __init__(self, dir):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phasegate test issuer")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
                     .not_valid_after(now + dt.timedelta(days=1)).sign(self.key, hashes.SHA256()))
        self.bundle = dir / "issuer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[str] = []  # scopes asked
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                scope = q.get("scope", [""])[0]
                issuer.requests.append(scope)
                user = ""
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                    if USERS.get(u, ("",))[0] != p:
                        self.send_response(401)
                        self.end_headers()
                        return
                    user = u
                access = []
                if scope and user:
                    kind, name, actions = scope.split(":")
                    allowed = [a for a in actions.split(",") if a in USERS[user][1]]
                    access = [{"type": kind, "name": name, "actions": allowed}]
                body = json.dumps({"token": issuer.token(user, access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, user: str, access: list) -> str:
        now = int(dt.datetime.now(dt.UTC).timestamp())
        claims = {"iss": "phasegate-test", "sub": user, "aud": SERVICE, "exp": now + 600, "nbf": now - 5,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        x5c = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"x5c": x5c})

    def stop(self):
        self.server.shutdown()


class TokenRegistry(DistributionRegistry):
    issuer: Issuer | None = None

    def _write_config(self):
        path = super()._write_config()
        cfg = yaml.safe_load(path.read_text())
        cfg["auth"] = {"token": {"realm": self.issuer.url, "service": SERVICE, "issuer": "phasegate-test",
                                 "rootcertbundle": str(self.issuer.bundle)}}
        path.write_text(yaml.safe_dump(cfg))
        return path


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("token-registry")
    issuer = Issuer(d)
    reg = TokenRegistry(dir=d, name="token-registry")
    reg.issuer = issuer
    reg.start()
    yield reg
    reg.stop()
    issuer.stop()


def client(reg, user):
    return RegistryClient(reg.url, username=user, password=Secret(USERS[user][0]))


def test_bearer_token_per_repository_scope_cached_and_widened_for_push(token_registry):
    issuer = token_registry.issuer
    with client(token_registry, "writer") as c, phttp.GUARD.writes_allowed("bearer test"):
        issuer.requests.clear()
        assert c.head_manifest("app", "1").status == 404  # pull scope
        assert c.head_manifest("app", "2").status == 404  # cached: no new token
        assert issuer.requests == ["repository:app:pull"]
        c.push("app", images.build_image("bearer"), tag="1")  # push challenges a wider scope: asked once
        assert issuer.requests[0] == "repository:app:pull" and len(issuer.requests) == 2
        assert sorted(issuer.requests[1].split(":")[2].split(",")) == ["pull", "push"]
        c.push("other", images.build_image("bearer-2"), tag="1")
        assert [sorted(x.split(":")[2].split(",")) for x in issuer.requests[2:]] == [["pull"], ["pull", "push"]]
        assert all(x.startswith("repository:other:") for x in issuer.requests[2:])  # a token per repository
        asked = len(issuer.requests)
        assert c.get_manifest("app", "1").digest == images.build_image("bearer").digest
        assert len(issuer.requests) == asked  # the push token covers pulls of the same repository
        result = check_registry(c, mode="verify")
        assert result.ok and result.repositories == 2 and result.blobs == 4
        assert "registry:catalog:*" in issuer.requests


def test_reader_is_refused_a_push_with_one_line(token_registry):
    with client(token_registry, "reader") as c, phttp.GUARD.writes_allowed("bearer test"):
        assert c.head_manifest("app", "1").status in (200, 404)
        with pytest.raises(AuthError) as e:
            c.push("app", images.build_image("refused-push"), tag="x")
    assert "\n" not in str(e.value) and USERS["reader"][0] not in str(e.value)


def test_bad_password_at_the_realm_is_an_auth_error(token_registry):
    bad = RegistryClient(token_registry.url, username="writer", password=Secret("pgcanary-wrong-one"))
    with bad, pytest.raises(AuthError) as e:
        bad.head_manifest("app", "1")
    assert "token realm" in str(e.value) and "pgcanary-wrong-one" not in str(e.value)


def test_a_token_the_registry_stops_accepting_is_asked_again(token_registry):
    issuer = token_registry.issuer
    with client(token_registry, "writer") as c:
        c.head_manifest("app", "1")
        asked = len(issuer.requests)
        # the cached token goes stale (expired / revoked): the registry challenges again, the client re-asks once
        (key,) = [k for k in c.auth._tokens if k[1] == "repository:app"]
        c.auth._tokens[key] = [(a, issuer.token("writer", [])) for a, _ in c.auth._tokens[key]]
        assert c.head_manifest("app", "1").status in (200, 404)
        assert len(issuer.requests) == asked + 1
