"""A Forgejo v11 stand-in: Forgejo's registry, package API and repository API on the wire, over a real engine.

No Forgejo binary can run here, so the lab serves what phasegate talks to -- `/v2` (Forgejo's OCI
registry), `/v2/token`, `/api/healthz`, the package REST API and the repository API -- over HTTPS
with a lab-CA certificate, the way Forgejo v11 answers (../shared/reference/forgejo-registry-v11-details.md:
challenge string, JWT realm, PAT scopes, the three error styles, tags/catalog paging quirks, the
version model with untagged `sha256:` versions) and with Forgejo's package permissions (`access()`:
a user's packages written by that user only, an organisation's by its teams, other users reading by
the owner's visibility). Bytes live in a real distribution engine that only the stand-in talks to.

Split by resource, the way go-containerregistry's pkg/registry is (tests/test_lab_imports.py pins
what each module may import):

| module | what it serves or knows |
|---|---|
| `wire` | the HTTP micro-framework (Request, Response, HttpError, Route, the TLS server) and the registry's grammar |
| `knobs` | the fault switches every area reads |
| `auth` | users, organisations, PATs and scopes, Basic/token/JWT authentication, `/v2/token`, who may read or write |
| `store` | the engine's files read as Forgejo's database (package versions), what deleting a version does |
| `blobs` | /v2 blobs and uploads (monolithic, chunked, mount) |
| `manifests` | /v2 manifests, tags and the catalog |
| `packages` | the package REST API and the package model of lab scenarios |
| `router` | `ForgejoStandin`: the server, the route table, `/api/healthz`, `/v2`'s dispatch, counters, `fault()` |
| `repos` | lab component `forgejo_repos`: the repository API (commits, statuses, raw files) mounted on the stand-in |
| `cleanup` | lab component `forgejo_cleanup`: the retention CronJob's pods run the checkout's cleanup.sh |
| `metrics` | lab component `forgejo_metrics`: the stand-in's memory as kubelet and kube-state-metrics report it |
| `*_faults` | the faults of that area (registered by phasegate.lab.faults.FAULT_MODULES) |
"""

from phasegate.lab.forgejo.knobs import Knobs
from phasegate.lab.forgejo.router import ForgejoStandin, SeenRequest
from phasegate.lab.forgejo.store import VersionRecord
from phasegate.lab.forgejo.wire import HttpError, Request, Response, Route

__all__ = ["ForgejoStandin", "HttpError", "Knobs", "Request", "Response", "Route", "SeenRequest", "VersionRecord"]
