"""Faults of the Forgejo stand-in's blobs (lab component `registries`)."""

from __future__ import annotations

from phasegate.lab.faults import fault


@fault("forgejo-blobs-unreadable", component="registries",
       description="Forgejo answers 404 BLOB_UNKNOWN for every blob it stores (file lost behind its database row)")
def _blobs_unreadable(lab):
    with lab["registries"].forgejo.fault(blobs_unreadable=True):
        yield
