"""Faults of the Forgejo stand-in (lab component `registries`).

Transport and behaviour faults turn the stand-in's knobs (phasegate.lab.forgejo.Knobs);
the on-disk faults break the seeded integrity targets in the Forgejo engine with
the same generic helpers registry-private uses (phasegate.lab.seed).
"""

from __future__ import annotations

from phasegate.lab import seed
from phasegate.lab.faults import fault
from phasegate.lab.registries import FORGEJO_OWNER, FORGEJO_PUSHER


def _forgejo(lab):
    return lab["registries"].forgejo


@fault("forgejo-pusher-token-revoked", component="registries",
       description="Forgejo: ci-pusher's write:package PAT is revoked (the environment holds a dead token)")
def _pusher_token_revoked(lab):
    pat = _forgejo(lab).pat(FORGEJO_PUSHER, "push")
    pat.revoked = True
    try:
        yield
    finally:
        pat.revoked = False


@fault("forgejo-answers-500", component="registries",
       description="Forgejo answers every request with HTTP 500 and an empty body")
def _answers_500(lab):
    with _forgejo(lab).fault(mode="error500"):
        yield


@fault("forgejo-hangs", component="registries",
       description="Forgejo accepts connections and requests and never answers")
def _hangs(lab):
    with _forgejo(lab).fault(mode="hang"):
        yield


@fault("forgejo-delete-ignored", component="registries",
       description="Forgejo's package API answers DELETE with 204 but the version survives")
def _delete_ignored(lab):
    with _forgejo(lab).fault(delete_mode="ignore"):
        yield


@fault("forgejo-delete-refused", component="registries",
       description="Forgejo's package API refuses to delete a version (HTTP 500)")
def _delete_refused(lab):
    with _forgejo(lab).fault(delete_mode="refuse"):
        yield


@fault("forgejo-scopes-not-enforced", component="registries",
       description="Forgejo ignores PAT scopes on /v2 (the pre-7.0.8 bug): a read:package token can push")
def _scopes_not_enforced(lab):
    with _forgejo(lab).fault(enforce_scopes=False):
        yield


@fault("forgejo-blobs-unreadable", component="registries",
       description="Forgejo answers 404 BLOB_UNKNOWN for every blob it stores (file lost behind its database row)")
def _blobs_unreadable(lab):
    with _forgejo(lab).fault(blobs_unreadable=True):
        yield


@fault("forgejo-unhealthy", component="registries",
       description="Forgejo's /api/healthz reports database:ping fail (HTTP 424)")
def _unhealthy(lab):
    with _forgejo(lab).fault(healthy=False):
        yield


def _on_disk(name: str, helper):
    @fault(f"forgejo-{name}", component="registries",
           description=f"Forgejo engine: the seeded {name} target broken on disk ({helper.__doc__.splitlines()[0]})")
    def _make(lab):
        with helper(lab["registries"].forgejo_engine, namespace=f"{FORGEJO_OWNER}/"):
            yield

    return _make


for _name, _helper in seed.FAULT_HELPERS.items():
    _on_disk(_name, _helper)
