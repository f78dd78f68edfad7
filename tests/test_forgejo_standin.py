"""The Forgejo stand-in speaks Forgejo v11 on the wire (reference/forgejo-registry-v11-details.md).

A private stand-in (own engine) so counts and pagination are exact; talked to
with phasegate's own clients (phasegate.http.client, phasegate.forgejo).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import jwt
import pytest

from phasegate import http
from phasegate.forgejo import DeletionRefused, Forgejo
from phasegate.http import GUARD, HttpSettings
from phasegate.lab.distribution import DistributionRegistry
from phasegate.lab.forgejo import ForgejoStandin, Response
from phasegate.lab.tls import LabCA
from phasegate.secrets import Secret
from phasegate.verdict import TimedOut

pytestmark = pytest.mark.lab

SETTINGS = HttpSettings(connect=2.0, read=3.0, total=20.0, retries=0, backoff=0.1)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
PUSH = Secret("pgcanary-standin-push-" + "a1" * 8, "push")
PULL = Secret("pgcanary-standin-pull-" + "b2" * 8, "pull")
CI = Secret("pgcanary-standin-ci-" + "c3" * 8, "ci")  # ci-pusher's write:package PAT: not the owner
OWN_READ = Secret("pgcanary-standin-own-read-" + "d4" * 8, "own-read")  # viktor's read:package PAT


@pytest.fixture(scope="module")
def fj(tmp_path_factory):
    d = tmp_path_factory.mktemp("standin")
    ca = LabCA.create(d / "tls")
    engine = DistributionRegistry(dir=d / "engine", name="standin-engine").start()
    cert, key = ca.issue("forgejo", "127.0.0.1")
    f = ForgejoStandin(engine, cert, key)
    f.add_user("viktor")  # a public user: owns viktor/*, the only one who may write it
    f.add_user("ci-pusher")
    f.add_user("cluster-puller")
    f.add_owner("infra-org", "private", {"ci-pusher": "write", "cluster-puller": "read"})
    f.add_pat("viktor", "push", PUSH.reveal(), {"write:package"})
    f.add_pat("viktor", "own-read", OWN_READ.reveal(), {"read:package"})
    f.add_pat("ci-pusher", "ci", CI.reveal(), {"write:package"})
    f.add_pat("cluster-puller", "pull", PULL.reveal(), {"read:package"})
    f.ca_bundle = str(ca.bundle)
    f.start()
    yield f
    f.stop()
    engine.stop()


@pytest.fixture(autouse=True)
def writes_allowed():
    with GUARD.writes_allowed("stand-in wire tests"):
        yield


@pytest.fixture
def client(fj):
    with http.client(SETTINGS, base_url=fj.url, ca_bundle=fj.ca_bundle) as c:
        yield c


def basic(user: str, secret: Secret) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret.reveal()}".encode()).decode()}


def bearer(client, user: str, secret: Secret) -> dict:
    r = client.get("/v2/token", headers=basic(user, secret))
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def upload_image(client, auth: dict, repo: str, payload: bytes, *, platform: str = "amd64") -> bytes:
    """Config + one layer uploaded (monolithic); returns the OCI manifest that lists them."""
    layer = payload
    cfg = json.dumps({"architecture": platform, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
    for blob in (layer, cfg):
        r = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha(blob)}, content=blob, headers=auth)
        assert r.status_code == 201, r.text
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer), "size": len(layer)}],
    }).encode()


def push_image(client, auth: dict, repo: str, ref: str, payload: bytes, *, platform: str = "amd64") -> str:
    """Config + one layer + OCI manifest under `ref` (a tag or its digest). Returns the digest."""
    manifest = upload_image(client, auth, repo, payload, platform=platform)
    ref = sha(manifest) if ref == "@digest" else ref
    r = client.put(f"/v2/{repo}/manifests/{ref}", content=manifest, headers={**auth, "Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    return r.headers["Docker-Content-Digest"]


def push_index(client, auth: dict, repo: str, tag: str, seed: bytes) -> tuple[str, list[str]]:
    """A two-platform index whose children are pushed by digest first (untagged versions), as buildx does."""
    children = []
    for arch in ("amd64", "arm64"):
        body = upload_image(client, auth, repo, seed + arch.encode(), platform=arch)
        r = client.put(f"/v2/{repo}/manifests/{sha(body)}", content=body, headers={**auth, "Content-Type": OCI_MANIFEST})
        assert r.status_code == 201, r.text
        children.append((sha(body), len(body), arch))
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": n, "platform": {"os": "linux", "architecture": a}}
        for d, n, a in children]}).encode()
    r = client.put(f"/v2/{repo}/manifests/{tag}", content=index, headers={**auth, "Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    return r.headers["Docker-Content-Digest"], [d for d, _, _ in children]


def packages(fj, secret: Secret = PULL, **kw) -> Forgejo:
    return Forgejo.connect(fj.url, secret, SETTINGS, owner="viktor", ca_bundle=fj.ca_bundle, **kw)


# -- authentication -------------------------------------------------------------


def test_anonymous_v2_gets_exactly_one_bearer_challenge(fj, client):
    r = client.get("/v2/")
    assert r.status_code == 401
    assert r.headers.get_list("WWW-Authenticate") == [
        f'Bearer realm="{fj.url}/v2/token",service="container_registry",scope="*"'
    ]
    assert r.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert r.json() == {"errors": [{"code": "UNAUTHORIZED", "message": ""}]}
    # every /v2/<owner>/... route challenges the same way
    r = client.get("/v2/viktor/anything/tags/list")
    assert r.status_code == 401 and "Bearer realm=" in r.headers["WWW-Authenticate"]


def test_token_endpoint_issues_a_24h_hs256_jwt_with_the_pat_scope(fj, client):
    r = client.get("/v2/token", params={"scope": "repository:viktor/x:push", "service": "x"},
                   headers=basic("whoever", PUSH))  # the username is ignored for a PAT
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert list(r.json()) == ["token"]
    claims = jwt.decode(r.json()["token"], fj.accounts.jwt_key, algorithms=["HS256"])
    assert claims["exp"] - claims["nbf"] == 24 * 3600
    assert claims["UserID"] == fj.users["viktor"].id
    assert claims["Scope"] == "write:package"
    # the token opens the ping
    tok = r.json()["token"]
    assert client.get("/v2/", headers={"Authorization": f"Bearer {tok}"}).status_code == 200
    # POST is a deliberate 404 stub (containerd falls back to GET)
    r = client.post("/v2/token", headers=basic("ci-pusher", PUSH))
    assert r.status_code == 404 and r.content == b""


def test_bad_credentials_get_plain_text_401_without_challenge(client):
    wrong = Secret("pgcanary-not-a-token-000000", "wrong")
    for path in ("/v2/token", "/v2/viktor/x/tags/list", "/v2/_catalog"):
        r = client.get(path, headers=basic("ci-pusher", wrong))
        assert r.status_code == 401, path
        assert r.headers["Content-Type"].startswith("text/plain")
        assert "WWW-Authenticate" not in r.headers
        assert r.text.strip() == "authGroup.Verify"
    # a PAT is not a registry JWT
    r = client.get("/v2/", headers={"Authorization": f"Bearer {PUSH.reveal()}"})
    assert r.status_code == 401 and r.headers["Content-Type"].startswith("text/plain")


def test_basic_works_directly_on_owner_routes_but_not_on_the_bare_ping(client):
    r = client.get("/v2/viktor/never-pushed/tags/list", headers=basic("cluster-puller", PULL))
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    r = client.get("/v2/", headers=basic("cluster-puller", PULL))
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers
    assert client.head("/v2/", headers=bearer(client, "cluster-puller", PULL)).status_code == 405


def test_read_scope_pulls_but_cannot_push_unless_scopes_are_not_enforced(fj, client):
    pusher = bearer(client, "viktor", PUSH)
    digest = push_image(client, pusher, "viktor/scopes", "1", b"scoped layer")
    puller = bearer(client, "cluster-puller", PULL)
    r = client.get(f"/v2/viktor/scopes/manifests/{digest}", headers=puller)
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest
    own_read = bearer(client, "viktor", OWN_READ)  # the owner, but a read:package PAT
    for auth in (puller, own_read):
        for attempt in (
            lambda auth=auth: client.post("/v2/viktor/scopes/blobs/uploads/", headers=auth),
            lambda auth=auth: client.put("/v2/viktor/scopes/manifests/2", content=r.content,
                               headers={**auth, "Content-Type": OCI_MANIFEST}),
            lambda auth=auth: client.delete("/v2/viktor/scopes/manifests/1", headers=auth),
        ):
            denied = attempt()
            assert denied.status_code == 401
            assert denied.headers["WWW-Authenticate"] == 'Basic realm="Gitea Package API"'
            assert denied.headers["Content-Type"].startswith("text/plain")
            assert denied.text.strip() == "reqPackageAccess"  # the error's title, not its message
    with fj.fault(enforce_scopes=False):  # the pre-7.0.8 bug: the owner's read PAT pushes...
        assert client.put("/v2/viktor/scopes/manifests/2", content=r.content,
                          headers={**own_read, "Content-Type": OCI_MANIFEST}).status_code == 201
        # ...but no scope makes another user the owner
        assert client.put("/v2/viktor/scopes/manifests/3", content=r.content,
                          headers={**puller, "Content-Type": OCI_MANIFEST}).status_code == 401


def test_a_users_packages_are_written_by_that_user_only(fj, client):
    """services/context/package.go determineAccessMode: ci-pusher's write:package PAT cannot write
    viktor/* (the real 2026-05 finding: pushes moved to viktor's PAT), on /v2 and on the package API."""
    ci = bearer(client, "ci-pusher", CI)
    r = client.post("/v2/viktor/owned/blobs/uploads/", headers=ci)
    assert r.status_code == 401 and r.text.strip() == "reqPackageAccess"
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Gitea Package API"'
    push_image(client, bearer(client, "viktor", PUSH), "viktor/owned", "1", b"owned layer")
    assert client.get("/v2/viktor/owned/manifests/1", headers=ci).status_code == 200  # viktor is public: others read
    # ci-pusher owns its own namespace
    assert push_image(client, ci, "ci-pusher/own", "1", b"ci layer").startswith("sha256:")
    with packages(fj, CI, deletable={"owned"}) as api:
        assert api.try_delete("owned", "1") == (403, "user should have specific permission or be a site admin")
        # an unknown version is 404 before any permission check (PackageAssignmentAPI runs first)
        assert api.try_delete("owned", "never-pushed") == (404, "package does not exist")


def test_an_organisations_packages_follow_team_levels(fj, client):
    ci, puller, owner = (bearer(client, u, s) for u, s in (("ci-pusher", CI), ("cluster-puller", PULL), ("viktor", PUSH)))
    push_image(client, ci, "infra-org/tool", "1", b"org layer")  # team Packages: write
    assert client.get("/v2/infra-org/tool/manifests/1", headers=puller).status_code == 200  # team: read
    assert client.post("/v2/infra-org/tool/blobs/uploads/", headers=puller).status_code == 401
    assert client.get("/v2/infra-org/tool/manifests/1", headers=owner).status_code == 401  # private org, no member
    fj.owners["infra-org"].visibility = "limited"
    try:
        assert client.get("/v2/infra-org/tool/manifests/1", headers=owner).status_code == 200  # signed in: read
        assert client.post("/v2/infra-org/tool/blobs/uploads/", headers=owner).status_code == 401
    finally:
        fj.owners["infra-org"].visibility = "private"


def test_owner_visibility_decides_who_else_reads(fj, client):
    push_image(client, bearer(client, "viktor", PUSH), "viktor/seen", "1", b"seen layer")
    puller = bearer(client, "cluster-puller", PULL)
    ghost = {"Authorization": f"Bearer {client.get('/v2/token').json()['token']}"}
    owner = fj.owners["viktor"]
    for visibility, puller_reads, ghost_reads in (("public", 200, 200), ("limited", 200, 401), ("private", 401, 401)):
        owner.visibility = visibility
        try:
            assert client.head("/v2/viktor/seen/manifests/1", headers=puller).status_code == puller_reads, visibility
            assert client.head("/v2/viktor/seen/manifests/1", headers=ghost).status_code == ghost_reads, visibility
            assert client.head("/v2/viktor/seen/manifests/1", headers=bearer(client, "viktor", PUSH)).status_code == 200
        finally:
            owner.visibility = "public"


def test_unknown_owner_and_bad_names(client):
    auth = bearer(client, "viktor", PUSH)
    r = client.get("/v2/nobody/x/tags/list", headers=auth)
    assert r.status_code == 404 and r.text.strip() == "Not found."
    r = client.get("/v2/viktor/Upper/tags/list", headers=auth)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "NAME_INVALID"
    r = client.get("/v2/viktor/scopes/manifests/no:such:ref", headers=auth)
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


# -- registry API -------------------------------------------------------------------


def test_manifest_and_blob_headers(client):
    auth = bearer(client, "viktor", PUSH)
    digest = push_image(client, auth, "viktor/headers", "v1", b"header layer")
    r = client.head("/v2/viktor/headers/manifests/v1", headers=auth)
    assert r.status_code == 200
    assert r.headers["Docker-Content-Digest"] == digest and r.headers["ETag"] == f'"{digest}"'
    assert r.headers["Content-Type"] == OCI_MANIFEST and int(r.headers["Content-Length"]) > 0
    manifest = client.get(f"/v2/viktor/headers/manifests/{digest}", headers={**auth, "Accept": "text/plain"})
    assert manifest.headers["Content-Type"] == OCI_MANIFEST  # Accept is ignored
    layer = json.loads(manifest.content)["layers"][0]["digest"]
    r = client.get(f"/v2/viktor/headers/blobs/{layer}", headers=auth)
    assert r.status_code == 200 and sha(r.content) == layer and r.headers["Docker-Content-Digest"] == layer
    r = client.head(f"/v2/viktor/headers/blobs/{sha(b'nope')}", headers=auth)
    assert r.status_code == 404


def test_chunked_upload_protocol(client):
    auth = bearer(client, "viktor", PUSH)
    data = b"0123456789" * 10
    r = client.post("/v2/viktor/chunks/blobs/uploads/", headers=auth)
    assert r.status_code == 202 and r.headers["Range"] == "0-0"
    loc = r.headers["Location"]
    assert loc.startswith("/v2/viktor/chunks/blobs/uploads/")
    r = client.patch(loc, content=data[:60], headers={**auth, "Content-Range": "0-59"})
    assert r.status_code == 202 and r.headers["Range"] == "0-59"
    assert client.get(loc, headers=auth).headers["Range"] == "0-60"  # v11's off-by-one
    r = client.patch(loc, content=data[60:], headers={**auth, "Content-Range": "10-49"})
    assert r.status_code == 416
    r = client.patch(loc, content=data[60:], headers={**auth, "Content-Range": "60-99"})
    assert r.status_code == 202
    r = client.put(loc, params={"digest": sha(data)}, headers=auth)
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/viktor/chunks/blobs/{sha(data)}"
    assert client.get(loc, headers=auth).status_code == 404


def test_manifest_put_requires_its_blobs_and_children(client):
    auth = bearer(client, "viktor", PUSH)
    missing = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": "x", "digest": sha(b"no config"), "size": 9}, "layers": []}).encode()
    r = client.put("/v2/viktor/strict/manifests/1", content=missing, headers={**auth, "Content-Type": OCI_MANIFEST})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"no child"), "size": 3}]}).encode()
    r = client.put("/v2/viktor/strict/manifests/2", content=index, headers={**auth, "Content-Type": OCI_INDEX})
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    r = client.put("/v2/viktor/strict/manifests/3", content=json.dumps({"schemaVersion": 1}).encode(),
                   headers={**auth, "Content-Type": "application/vnd.docker.distribution.manifest.v1+json"})
    assert r.status_code == 501


def test_tags_are_lowercased_sorted_and_every_page_has_a_link(client):
    auth = bearer(client, "viktor", PUSH)
    for tag in ("B", "a", "C2"):
        push_image(client, auth, "viktor/tagged", tag, b"tag layer")
    r = client.get("/v2/viktor/tagged/tags/list", headers=auth)
    assert r.json() == {"name": "viktor/tagged", "tags": ["a", "b", "c2"]}
    assert r.headers["Link"] == '</v2/viktor/tagged/tags/list?last=c2>; rel="next"'  # even on the last page
    r = client.get("/v2/viktor/tagged/tags/list", params={"n": 2}, headers=auth)
    assert r.json()["tags"] == ["a", "b"] and r.headers["Link"] == '</v2/viktor/tagged/tags/list?last=b&n=2>; rel="next"'
    r = client.get("/v2/viktor/tagged/tags/list", params={"n": 2, "last": "b"}, headers=auth)
    assert r.json()["tags"] == ["c2"] and "Link" in r.headers
    r = client.get("/v2/viktor/tagged/tags/list", params={"n": 2, "last": "c2"}, headers=auth)
    assert r.json()["tags"] == [] and "Link" not in r.headers
    r = client.get("/v2/viktor/tagged/tags/list", params={"n": 0}, headers=auth)
    assert r.json()["tags"] == [] and "Link" not in r.headers
    assert client.get("/v2/viktor/tagged/manifests/B", headers=auth).status_code == 200  # case-insensitive lookup
    assert client.head("/v2/viktor/tagged/tags/list", headers=auth).status_code == 404


def test_catalog_caps_n_at_100_and_links_only_full_pages(fj, client):
    # 101 repositories straight into the engine (the catalog reads the store, not the path taken)
    body = b"catalog layer"
    cfg = b"{}"
    with httpx.Client(base_url=fj.engine.url, trust_env=False) as engine, ThreadPoolExecutor(8) as pool:
        def make(i):
            repo = f"viktor/cat-{i:03d}"
            for blob in (body, cfg):
                loc = engine.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
                assert engine.put(f"{loc}&digest={sha(blob)}", content=blob).status_code == 201
            m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(cfg), "size": 2},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(body),
                                        "size": len(body)}]}).encode()
            assert engine.put(f"/v2/{repo}/manifests/1", content=m,
                              headers={"Content-Type": OCI_MANIFEST}).status_code == 201

        list(pool.map(make, range(101)))
    auth = bearer(client, "cluster-puller", PULL)
    r = client.get("/v2/_catalog", params={"n": 1000}, headers=auth)
    first = r.json()["repositories"]
    assert len(first) == 100 and first == sorted(first)
    assert r.headers["Link"] == f'</v2/_catalog?last={first[-1].replace("/", "%2F")}&n=100>; rel="next"'
    r = client.get("/v2/_catalog", params={"last": first[-1]}, headers=auth)
    rest = r.json()["repositories"]
    assert rest and "Link" not in r.headers and not set(rest) & set(first)
    r = client.get("/v2/_catalog", params={"n": 3}, headers=auth)
    assert len(r.json()["repositories"]) == 3 and "Link" in r.headers


# -- package API ----------------------------------------------------------------------


def test_package_api_lists_index_children_as_untagged_versions(fj, client):
    auth = bearer(client, "viktor", PUSH)
    index, children = push_index(client, auth, "viktor/multi", "latest", b"multi")
    with packages(fj) as api:
        versions = {v.version: v for v in api.package_versions("multi")}
    assert set(versions) == {"latest", *children}
    assert [v.untagged for v in versions.values()].count(True) == 2
    v = versions["latest"]
    assert v.owner == "viktor" and v.type == "container" and v.creator == "viktor"
    assert v.html_url == f"{fj.url}/viktor/-/packages/container/multi/latest"
    assert versions[children[0]].html_url.endswith(f"/multi/{children[0]}")  # ':' stays as is


def test_deleting_an_index_child_orphans_the_index(fj, client):
    """The 2026-06-10 incident, reproduced: the REST delete of a sha256: version breaks its index."""
    auth = bearer(client, "viktor", PUSH)
    index, children = push_index(client, auth, "viktor/incident", "v1", b"incident")
    with packages(fj, PUSH, deletable={"incident"}) as api:
        assert api.delete("incident", children[0]) == 204
        assert api.get("incident", children[0]) is None
        assert api.get("incident", "v1") is not None
    assert client.head("/v2/viktor/incident/manifests/v1", headers=auth).status_code == 200
    assert client.head(f"/v2/viktor/incident/manifests/{children[0]}", headers=auth).status_code == 404
    assert client.head(f"/v2/viktor/incident/manifests/{children[1]}", headers=auth).status_code == 200


def test_deleting_a_tag_version_removes_it_from_v2_and_the_api(fj, client):
    auth = bearer(client, "viktor", PUSH)
    digest = push_image(client, auth, "viktor/gone", "1", b"gone layer")
    with packages(fj, PUSH, deletable={"gone"}) as api:
        assert api.get("gone", "1").version == "1"
        assert api.delete("gone", "1") == 204
        assert api.get("gone", "1") is None
        assert api.delete("gone", "1") == 404
    assert client.get("/v2/viktor/gone/manifests/1", headers=auth).status_code == 404
    assert client.get(f"/v2/viktor/gone/manifests/{digest}", headers=auth).status_code == 404
    r = client.get("/v2/viktor/gone/tags/list", headers=auth)
    assert r.status_code == 200 and r.json()["tags"] == []  # the package row survives until cron cleanup


def test_package_api_paging_limits_and_total(fj, client):
    auth = bearer(client, "viktor", PUSH)
    digest = push_image(client, auth, "viktor/many", "t00", b"many layer")
    manifest = client.get(f"/v2/viktor/many/manifests/{digest}", headers=auth).content
    for i in range(1, 55):
        r = client.put(f"/v2/viktor/many/manifests/t{i:02d}", content=manifest,
                       headers={**auth, "Content-Type": OCI_MANIFEST})
        assert r.status_code == 201
    with packages(fj) as api:
        r = api.client.get("/api/v1/packages/viktor", params={"type": "container", "q": "many"})
        assert len(r.json()) == 30 and r.headers["X-Total-Count"] == "55"
        assert 'rel="next"' in r.headers["Link"]
        r = api.client.get("/api/v1/packages/viktor", params={"type": "container", "q": "many", "limit": 500})
        assert len(r.json()) == 50
        r = api.client.get("/api/v1/packages/viktor", params={"type": "container", "q": "many", "limit": 50, "page": 3})
        assert r.json() == []
        r = api.client.get("/api/v1/packages/viktor", params={"type": "npm"})
        assert r.json() == [] and r.headers["X-Total-Count"] == "0"
        everything = list(api.versions(q="many"))
    assert len(everything) == 55 and len({v.id for v in everything}) == 55
    times = [v.created_at for v in everything]
    assert times == sorted(times, reverse=True)


def test_created_at_can_be_aged_by_lab_scenarios(fj, client):
    auth = bearer(client, "viktor", PUSH)
    push_image(client, auth, "viktor/aged", "old", b"aged layer")
    push_image(client, auth, "viktor/aged", "new", b"aged layer 2")
    old = dt.datetime(2026, 5, 1, 4, 0, tzinfo=dt.UTC)
    fj.set_created_at("viktor/aged", "old", old)
    with packages(fj) as api:
        vs = api.package_versions("aged")
    assert [v.version for v in vs] == ["new", "old"]
    assert vs[1].created_at == old


def test_package_api_auth(fj, client):
    r = client.get("/api/v1/packages/viktor")
    assert r.status_code == 401 and r.json()["message"] == "token is required"
    r = client.get("/api/v1/packages/viktor", headers={"Authorization": "token pgcanary-no-such-token-00"})
    assert r.status_code == 401 and r.json()["message"] == "user does not exist [uid: 0, name: ]"
    r = client.delete("/api/v1/packages/viktor/container/aged/old", headers={"Authorization": f"token {PULL.reveal()}"})
    assert r.status_code == 403 and "write:package" in r.json()["message"]
    r = client.get("/api/v1/packages/viktor", headers={"Authorization": f"Bearer {PULL.reveal()}"})
    assert r.status_code == 200


def test_the_client_deletes_only_what_it_was_built_for(fj):
    with packages(fj, PUSH, deletable={"smoketest"}) as api:
        with pytest.raises(DeletionRefused):
            api.delete("aged", "old")
    assert any(v.version == "old" for v in fj.versions("viktor") if v.name == "aged")


def test_healthz_pass_and_fail(fj):
    with packages(fj) as api:
        h = api.health()
        assert h.ok and h.checks == {"cache:ping": "pass", "database:ping": "pass"}
        r = api.client.get("/api/healthz", auth=None)
        assert r.headers["Content-Type"] == "application/json" and r.headers["Cache-Control"] == "no-store"
        with fj.fault(healthy=False):
            h = api.health()
        assert h.http_status == 424 and h.status == "fail" and h.failing() == ["database:ping"]


# -- knobs, counters, extension --------------------------------------------------------


def test_fault_knobs(fj, client):
    with fj.fault(mode="error500"):
        for path in ("/v2/", "/api/healthz", "/api/v1/packages/viktor"):
            r = client.get(path)
            assert r.status_code == 500 and r.content == b""
    with fj.fault(mode="hang", only=("/v2",)):
        assert client.get("/api/healthz").status_code == 200
        with pytest.raises(TimedOut):
            client.get("/v2/")
    with fj.fault(mode="slow", slow_seconds=0.2):
        assert client.get("/api/healthz").status_code == 200
    assert client.get("/v2/").status_code == 401


def test_counters_prove_what_was_written(fj, client):
    mark = fj.mark()
    auth = bearer(client, "cluster-puller", PULL)
    client.get("/v2/_catalog", headers=auth)
    assert fj.writes(mark) == []
    assert [s.method for s in fj.requests(mark)] == ["GET", "GET"]
    push_image(client, bearer(client, "viktor", PUSH), "viktor/counted", "1", b"counted")
    assert [(s.method, s.status) for s in fj.writes(mark)] == [("POST", 201), ("POST", 201), ("PUT", 201)]
    assert fj.counts["PUT"] >= 1


def test_other_areas_can_mount_routes(fj, client):
    def commits(req):
        p = fj.api_principal(req, "repository")
        return Response.json([{"sha": "abc", "author": p.user.name, "repo": req.params["repo"]}])

    fj.route("GET", r"/api/v1/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/commits", commits)
    fj.add_pat("viktor", "repo", "pgcanary-standin-repo-token-01", {"read:repository"})
    r = client.get("/api/v1/repos/viktor/infra/commits", headers={"Authorization": "token pgcanary-standin-repo-token-01"})
    assert r.status_code == 200 and r.json()[0] == {"sha": "abc", "author": "viktor", "repo": "infra"}
    r = client.get("/api/v1/repos/viktor/infra/commits", headers={"Authorization": f"token {PULL.reveal()}"})
    assert r.status_code == 403  # read:package does not cover repositories


def test_forgejo_cron_drops_only_old_digests_no_tagged_index_lists(fj, client):
    """cleanup_sha256.go: untagged versions older than 24 h go unless a *tagged* index lists them;
    the indexes are read globally (whatever their age or image)."""
    auth = bearer(client, "viktor", PUSH)
    index, children = push_index(client, auth, "viktor/cron", "v1", b"cron")
    loose = push_image(client, auth, "viktor/cron", "@digest", b"cron loose")
    # an index that only an untagged index lists protects nothing
    _, hidden = push_index(client, auth, "viktor/cron-hidden", "tmp", b"cron hidden")
    hidden_index = client.get("/v2/viktor/cron-hidden/manifests/tmp", headers=auth)
    client.delete("/v2/viktor/cron-hidden/manifests/tmp", headers=auth)
    assert client.put(f"/v2/viktor/cron-hidden/manifests/{sha(hidden_index.content)}", content=hidden_index.content,
                      headers={**auth, "Content-Type": OCI_INDEX}).status_code == 201
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    for repo, version in [("viktor/cron", loose), *[("viktor/cron", c) for c in children],
                          ("viktor/cron-hidden", sha(hidden_index.content)), *[("viktor/cron-hidden", c) for c in hidden]]:
        fj.set_created_at(repo, version, old)
    fresh = push_image(client, auth, "viktor/cron", "@digest", b"cron fresh")  # younger than 24 h: stays
    gone = {(v.repository, v.version) for v in fj.run_cleanup_packages()}
    assert gone == {("viktor/cron", loose), ("viktor/cron-hidden", sha(hidden_index.content)),
                    *[("viktor/cron-hidden", c) for c in hidden]}
    assert client.head("/v2/viktor/cron/manifests/v1", headers=auth).status_code == 200
    assert all(client.head(f"/v2/viktor/cron/manifests/{c}", headers=auth).status_code == 200 for c in [*children, fresh])


def test_a_rest_delete_takes_the_layers_only_that_version_used(fj, client):
    """A version's blobs are its package files: after the REST delete, a layer no other version of
    the image uses answers 404 at once; a shared one stays."""
    auth = bearer(client, "viktor", PUSH)
    only = json.loads(upload_image(client, auth, "viktor/layers", b"layer of one"))
    client.put("/v2/viktor/layers/manifests/one", content=json.dumps(only).encode(),
               headers={**auth, "Content-Type": OCI_MANIFEST})
    push_image(client, auth, "viktor/layers", "two", b"layer of two")
    shared = json.dumps({**only, "annotations": {"copy": "yes"}}).encode()  # same blobs, another manifest
    assert client.put("/v2/viktor/layers/manifests/three", content=shared,
                      headers={**auth, "Content-Type": OCI_MANIFEST}).status_code == 201
    layer = only["layers"][0]["digest"]
    with packages(fj, PUSH, deletable={"layers"}) as api:
        assert api.delete("layers", "two") == 204
        assert api.delete("layers", "one") == 204
        assert client.head(f"/v2/viktor/layers/blobs/{layer}", headers=auth).status_code == 200  # "three" holds it
        assert api.delete("layers", "three") == 204
    r = client.head(f"/v2/viktor/layers/blobs/{layer}", headers=auth)
    assert r.status_code == 404


def test_other_basic_forms_and_the_ghost(client):
    # Basic <PAT>: and <PAT>:x-oauth-basic are PAT logins too
    for user, password in ((PULL.reveal(), ""), (PULL.reveal(), "x-oauth-basic")):
        cred = base64.b64encode(f"{user}:{password}".encode()).decode()
        r = client.get("/v2/token", headers={"Authorization": f"Basic {cred}"})
        assert r.status_code == 200
    # no credentials: an anonymous (ghost) token, which sees nothing of a private owner
    r = client.get("/v2/token")
    assert r.status_code == 200
    ghost = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/v2/", headers=ghost).status_code == 200
    assert "infra-org/tool" not in client.get("/v2/_catalog", headers=ghost).json()["repositories"]
    r = client.get("/v2/infra-org/tool/tags/list", headers=ghost)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="Gitea Package API"'


def test_package_files_use_capital_size(fj, client):
    auth = bearer(client, "viktor", PUSH)
    digest = push_image(client, auth, "viktor/files", "1", b"files layer")
    with packages(fj) as api:
        files = api.client.get("/api/v1/packages/viktor/container/files/1/files").json()
    assert files[0]["name"] == "manifest.json" and files[0]["sha256"] == digest.split(":", 1)[1]
    assert all("Size" in f and "size" not in f for f in files)
    manifest = json.loads(client.get(f"/v2/viktor/files/manifests/{digest}", headers=auth).content)
    blobs = [manifest["config"]] + manifest["layers"]
    assert sorted(f["name"] for f in files[1:]) == sorted(d["digest"].replace(":", "_") for d in blobs)


def test_repository_api_combined_status_and_default_page(fj):
    """The combined state is the worst by Forgejo's priority (error > failure > warning > pending >
    success); limit=0 (or none) is the default page of 30, not one commit."""
    from types import SimpleNamespace

    from phasegate.forgejo_repos import ForgejoRepos
    from phasegate.lab.forgejo.repos import ForgejoReposStandin as LabRepos
    from phasegate.lab.forgejo.repos import LabCommit, LabRepo

    t0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    states = {"a" * 40: {"ci/x": "success", "ci/y": "warning"}, "b" * 40: {"ci/x": "pending", "ci/y": "warning"},
              "c" * 40: {"ci/x": "warning", "ci/y": "failure"}, "d" * 40: {"ci/x": "success"}}
    commits = [LabCommit(sha, t0, sha[:4], st) for sha, st in states.items()]
    commits += [LabCommit(f"{n:040x}", t0 - dt.timedelta(hours=n), f"old {n}", {}) for n in range(1, 40)]
    lab_repos = LabRepos()
    lab_repos._lab = {"registries": SimpleNamespace(forgejo=fj)}
    lab_repos.repos = {"viktor/statuses": LabRepo("viktor/statuses", commits, {})}
    base = r"/api/v1/repos/(?P<owner>[^/]+)/(?P<repo>statuses)"
    fj.route("GET", base + r"/commits", lab_repos._commits)
    fj.route("GET", base + r"/commits/(?P<sha>[0-9a-f]{7,40})/status(?:es)?", lab_repos._status)
    fj.add_pat("viktor", "status-reader", "pgcanary-standin-status-token-01", {"read:repository"})
    with ForgejoRepos.connect(fj.url, Secret("pgcanary-standin-status-token-01", "repo"), SETTINGS,
                              ca_bundle=fj.ca_bundle) as repos:
        assert [repos.status("viktor/statuses", sha) for sha in states] == ["warning", "warning", "failure", "success"]
        assert repos.status("viktor/statuses", "e" * 40) == ""
        assert len(repos.commits("viktor/statuses", limit=0)) == 30
        assert len(repos.commits("viktor/statuses", limit=500)) == 43


def test_a_read_the_engine_dropped_is_sent_once_more_a_write_or_a_timeout_is_not():
    """The stand-in's own hop to its engine: a pooled connection the engine dropped is not Forgejo failing."""
    import types

    import httpx

    from phasegate.lab.forgejo.store import Store
    from phasegate.lab.forgejo.wire import HttpError

    seen: list[str] = []

    def engine(failure):
        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(request.method)
            if len(seen) == 1 or failure is httpx.ReadTimeout:
                raise failure("the engine dropped it", request=request)
            return httpx.Response(200, content=b"ok")
        return answer

    for method, failure, answered in [("GET", httpx.RemoteProtocolError, 200), ("HEAD", httpx.ReadError, 200),
                                      ("PUT", httpx.RemoteProtocolError, 500), ("GET", httpx.ReadTimeout, 500)]:
        seen.clear()
        store = Store(types.SimpleNamespace(url="http://engine.test"), "viktor")  # type: ignore[arg-type]
        store.http = httpx.Client(base_url="http://engine.test", transport=httpx.MockTransport(engine(failure)))
        try:
            status = store.call(method, "/v2/x/blobs/sha256:0").status_code
        except HttpError as e:
            status = e.response.status
        sent = 2 if method in ("GET", "HEAD") and failure is not httpx.ReadTimeout else 1
        assert (status, len(seen)) == (answered, sent), (method, failure, seen)
