"""Faults of the Forgejo stand-in's accounts (lab component `registries`): a revoked PAT, an inventory
secret holding another user's PAT, an owner whose packages others may no longer read."""

from __future__ import annotations

import contextlib

from phasegate.lab.faults import fault
from phasegate.lab.registries import FORGEJO_CI_USER, FORGEJO_CLEANER, FORGEJO_OWNER, FORGEJO_PULLER, FORGEJO_PUSHER


def _forgejo(lab):
    return lab["registries"].forgejo


@fault("forgejo-pusher-token-revoked", component="registries",
       description="Forgejo: the pusher's write:package PAT is revoked (the environment holds a dead token)")
def _pusher_token_revoked(lab):
    pat = _forgejo(lab).pat(FORGEJO_PUSHER, "push")
    pat.revoked = True
    try:
        yield
    finally:
        pat.revoked = False


@contextlib.contextmanager
def _token_of(lab, user: str, name: str, *, owner: str, scopes=None):
    """The PAT behind an inventory secret belongs to `owner` (and has `scopes`) for the block."""
    pat = _forgejo(lab).pat(user, name)
    before = (pat.user, pat.scopes)
    pat.user, pat.scopes = owner, frozenset(scopes) if scopes is not None else pat.scopes
    try:
        yield
    finally:
        pat.user, pat.scopes = before


@fault("forgejo-cleaner-not-owner", component="registries",
       description="the cleanup secret holds ci-pusher's write:package PAT, as from 2026-05-07 to 06-09: "
                   "Forgejo refuses its DELETEs of viktor/* (403), which the dry run hid for a month")
def _cleaner_not_owner(lab):
    # stacks/forgejo/cleanup.tf:7-9 @ 6d5204db (a 3rd PAT on ci-pusher); :7-17 @ e0452611 (the 403)
    with _token_of(lab, FORGEJO_CLEANER, "cleanup", owner=FORGEJO_CI_USER):
        yield


@fault("forgejo-puller-can-push", component="registries",
       description="the pull secret holds the owner's write:package PAT (the push token copied into "
                   "forgejo_pull_token): the puller's identity can push")
def _puller_can_push(lab):
    with _token_of(lab, FORGEJO_PULLER, "pull", owner=FORGEJO_OWNER, scopes={"write:package"}):
        yield


@fault("forgejo-owner-private", component="registries",
       description="viktor's profile visibility set to private: other users (cluster-puller) may no "
                   "longer read his packages (reqPackageAccess 401 on every pull)")
def _owner_private(lab):
    owner = _forgejo(lab).owners[FORGEJO_OWNER]
    before = owner.visibility
    owner.visibility = "private"
    try:
        yield
    finally:
        owner.visibility = before
