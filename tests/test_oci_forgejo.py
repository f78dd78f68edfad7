"""phasegate.oci against the Forgejo v11 stand-in: scope="*" tokens, plain-401 refusals, relative Locations."""

from __future__ import annotations

import pytest

from phasegate import http, images
from phasegate.integrity import check_image
from phasegate.oci import RegistryClient
from phasegate.secrets import Secret
from phasegate.verdict import AuthError

pytestmark = pytest.mark.lab


def _client(lab, user_key):
    from phasegate.lab.registries import FORGEJO_PULLER, FORGEJO_PUSHER

    user = {"forgejo_push_token": FORGEJO_PUSHER, "forgejo_pull_token": FORGEJO_PULLER}[user_key]
    return RegistryClient(lab["registries"].forgejo.url, username=user,
                          password=Secret(lab.secret(user_key), user_key), ca_bundle=str(lab.ca.bundle))


def test_one_token_for_every_repository(lab):
    with _client(lab, "forgejo_pull_token") as c:
        mark = http.TRANSCRIPT.mark()
        c.head_manifest("viktor/payslip-ingest", "latest")
        c.head_manifest("viktor/job-hunter", "latest")
        c.catalog()
        token_requests = [e for e in http.TRANSCRIPT.since(mark) if "/v2/token" in e.url]
        assert len(token_requests) == 1  # scope="*": one token serves every repository and the catalog


def test_a_token_forgejo_no_longer_accepts_is_asked_again(lab):
    with _client(lab, "forgejo_pull_token") as c:
        c.head_manifest("viktor/payslip-ingest", "latest")
        host = c.host
        c.auth._any_scope[host] = "not.a.valid-jwt"  # expired / garbled: Forgejo answers a plain 401
        mark = http.TRANSCRIPT.mark()
        assert c.head_manifest("viktor/payslip-ingest", "latest").status == 200
        assert sum("/v2/token" in e.url for e in http.TRANSCRIPT.since(mark)) == 1


def test_push_with_relative_locations_then_delete(lab):
    item = images.build_multiarch("oci-forgejo-roundtrip")
    repo = "viktor/phasegate-oci-roundtrip"
    with _client(lab, "forgejo_push_token") as c, http.GUARD.writes_allowed("oci forgejo test"):
        try:
            assert c.push(repo, item, tag="1") == item.digest
            assert check_image(c, repo, "1", mode="verify").ok
        finally:
            c.delete_manifest(repo, "1")
        assert c.head_manifest(repo, "1").status == 404


def test_read_scope_is_refused_a_push_in_one_line(lab):
    with _client(lab, "forgejo_pull_token") as c, http.GUARD.writes_allowed("oci forgejo test"):
        with pytest.raises(AuthError) as e:
            c.push("viktor/phasegate-oci-refused", images.build_image("oci-forgejo-refused"), tag="1")
    assert "\n" not in str(e.value) and lab.secret("forgejo_pull_token") not in str(e.value)
