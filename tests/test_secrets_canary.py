"""Secrets never leave memory: redaction covers every shape a credential takes, and gate runs leak nothing.

Every gate run the suite's own tests start (tests/harness.py) writes junit
XML, Allure results and pytest's cache and is searched for the lab's secrets
(tests/canary.py); the fault matrix and the green run assert `not run.leaks`,
so every phase, green and under every fault, is a canary run. This module
proves the redaction and the search themselves, and runs the gates against a
server that echoes every credential it receives back in its error answers.
"""

from __future__ import annotations

import base64
import json
import pickle
import urllib.parse

import httpx
import pytest

from phasegate.lab.core import CANARY
from phasegate.secrets import Secret, redact, register_basic
from tests.canary import leaks_in_text, leaks_in_tree

USER = "ci-pusher"


@pytest.fixture
def secret() -> Secret:
    import secrets as _s

    # special characters on purpose: URL-encoding and base64 alignments must still be found
    return Secret(f"{CANARY}-unit-{_s.token_hex(10)}+/@:x", "unit")


def _b64(text: str, alphabet=base64.b64encode) -> str:
    return alphabet(text.encode()).decode()


def _dockerconfigjson(value: str) -> str:
    return json.dumps({"auths": {"forgejo.example.test": {"username": USER, "password": value,
                                                          "auth": _b64(f"{USER}:{value}")}}})


# Where a credential shows up in real output: headers, URLs, client reprs, exception texts, k8s objects.
SHAPES = {
    "plain": lambda v: f"login failed with {v}",
    "basic-header": lambda v: f"Authorization: Basic {_b64(f'{USER}:{v}')}",
    "basic-header-unregistered-user": lambda v: f"sent {_b64(f'someone-else:{v}')} upstream",
    "python-repr-headers": lambda v: repr({"Authorization": f"token {v}", "Accept": "*/*"}),
    "url-userinfo": lambda v: f"GET https://{USER}:{urllib.parse.quote(v, safe='')}@registry.test/v2/",
    "url-query": lambda v: f"GET https://forgejo.test/v2/token?service=x&token={urllib.parse.quote(v, safe='')}",
    "url-query-plus": lambda v: f"POST /login?password={urllib.parse.quote_plus(v)}",
    "dockerconfigjson": _dockerconfigjson,
    "dockerconfigjson-secret-data": lambda v: repr({"data": {".dockerconfigjson": _b64(_dockerconfigjson(v))}}),
    "dockerconfigjson-base64-in-text": lambda v: f"secret data was {_b64(_dockerconfigjson(v))} (base64)",
    "yaml": lambda v: f"stringData:\n  REG_USER: {USER}\n  REG_PASS: {v}\n",
    "x-registry-auth": lambda v: "X-Registry-Auth: " + _b64(json.dumps({"username": USER, "password": v}),
                                                             base64.urlsafe_b64encode),
    "docker-sdk-auth-config": lambda v: repr({"username": USER, "password": v, "serveraddress": "r.test"}),
    "env-file": lambda v: f"export PHASEGATE_FORGEJO_PUSH_TOKEN={v}\n",
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_redact_hides_every_shape(secret, shape):
    text = SHAPES[shape](secret.reveal())
    assert leaks_in_text(text, shape, [secret.reveal()]), "the canary search must see the raw text"
    assert not leaks_in_text(redact(text), shape, [secret.reveal()]), redact(text)


@pytest.mark.parametrize("text", [
    "Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjaS1wdXNoZXIifQ.c2lnbmF0dXJl",
    "{'Authorization': 'Bearer 3q2+7w-not-registered'}",
    '{"token": "not-registered-token", "expires_in": 60}',
    "{'access_token': 'not-registered-token'}",
    "password: not-registered-password",
])
def test_redact_hides_unregistered_credential_shapes(text):
    out = redact(text)
    assert "not-registered" not in out and "c2lnbmF0dXJl" not in out and "3q2+7w" not in out, out


def test_redact_keeps_ordinary_words():
    for text in ["expected: 0 broken references", "secret 'x' is missing: set PHASEGATE_X",
                 "token realm https://f.test/v2/token refused a token as 'u' for scope * (HTTP 401)",
                 "some token: 401"]:
        assert redact(text) == text


def test_secret_never_prints(secret):
    for shown in (str(secret), repr(secret), f"{secret}", repr([secret]), repr({"password": secret})):
        assert secret.reveal() not in shown and CANARY not in shown
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_register_basic_hides_the_pair():
    password = f"{CANARY}-pair-0123456789abcdef"
    register_basic("someone", password)
    header = "Basic " + _b64(f"someone:{password}")
    assert not leaks_in_text(redact(f"Authorization: {header}"), "x", [password])


# -- exception texts of the real client libraries ----------------------------------------


def test_httpx_status_error_text(secret):
    v = urllib.parse.quote(secret.reveal(), safe="")
    request = httpx.Request("GET", f"https://{USER}:{v}@registry.test/v2/?token={v}")
    response = httpx.Response(401, request=request)
    with pytest.raises(httpx.HTTPStatusError) as e:
        response.raise_for_status()
    assert leaks_in_text(str(e.value), "raw", [secret.reveal()])
    assert not leaks_in_text(redact(str(e.value)), "httpx", [secret.reveal()])


def test_kubernetes_api_exception_text(secret):
    from kubernetes.client import ApiException

    class Resp:  # what the client's urllib3 response offers ApiException
        status, reason = 403, "Forbidden"
        data = json.dumps({"kind": "Status", "message": f"secrets is forbidden: token {secret.reveal()} denied",
                           "details": {"data": {".dockerconfigjson": _b64(_dockerconfigjson(secret.reveal()))}}})

        headers = {"Www-Authenticate": f'Bearer realm="k8s", error="{secret.reveal()}"'}

        def getheaders(self):
            return self.headers

    text = str(ApiException(http_resp=Resp()))
    assert leaks_in_text(text, "raw", [secret.reveal()])
    assert not leaks_in_text(redact(text), "kubernetes", [secret.reveal()]), redact(text)


def test_docker_sdk_error_text(secret):
    import docker.errors

    e = docker.errors.APIError("500 Server Error for http+docker://localhost/v1.41/auth",
                               explanation=f"login attempt for {USER} with {secret.reveal()} failed: "
                                           f"{_dockerconfigjson(secret.reveal())}")
    assert leaks_in_text(str(e), "raw", [secret.reveal()])
    assert not leaks_in_text(redact(str(e)), "docker", [secret.reveal()])


def test_verdicts_are_redacted_when_built(secret):
    from phasegate.verdict import Broken, GateFailed

    g = GateFailed(expected=f"token {secret.reveal()}", seen=_b64(f"{USER}:{secret.reveal()}"),
                   where=f"https://u:{secret.reveal()}@x.test/")
    b = Broken(f"failed with {_dockerconfigjson(secret.reveal())}")
    assert not leaks_in_text(str(g) + str(b) + repr(b.args), "verdicts", [secret.reveal()])


# -- the search itself can fail ----------------------------------------------------------


def test_canary_search_finds_planted_leaks(tmp_path, secret):
    (tmp_path / "allure-results").mkdir()
    (tmp_path / "allure-results" / "x-attachment.txt").write_text(_b64(_dockerconfigjson(secret.reveal())))
    (tmp_path / "junit.xml").write_text(f"<failure message='auth {_b64(f'{USER}:{secret.reveal()}')}'/>")
    (tmp_path / "clean.txt").write_text("nothing here")
    found = leaks_in_tree(tmp_path, [secret.reveal()])
    assert {f.split(":")[0] for f in found} == {"allure-results/x-attachment.txt", "junit.xml"}
    assert all(secret.reveal() not in f for f in found), "the report of a leak must not leak it again"


def test_canary_marker_alone_is_a_leak():
    assert leaks_in_text(f"partial {CANARY}-forgejo-", "x", [])


def _every_pattern(text: str) -> str:
    from phasegate.secrets import _PATTERNS

    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


@pytest.mark.parametrize("text", [
    *(shape("unregistered-Value+/@:x") for shape in SHAPES.values()),
    "AUTHORIZATION: BASIC dXNlcjpwYXNzd29yZA==", "PassWord=hunter2hunter2", "'Token': 'abc'", "REG_PASS: x1",
    "proxy-authorization=token abcdef", "https://u:p@h.test/", "no credential in here at all",
    "\u212aey: \"to\u212aen\": \"x\"", "pa\u017f\u017fword: y", "{\"token\u212a\": 1}",  # Kelvin sign, long s
])
def test_redact_skips_only_patterns_that_cannot_match(text):
    """redact() runs a pattern only when what it cannot match without is in the text: the result is the
    same as every pattern's."""
    assert redact(text) == _every_pattern(text)
