"""Faults of the Forgejo stand-in's front (lab component `registries`): every request answered 500 or
never, the health check failing. They turn the router's knobs (knobs.Knobs)."""

from __future__ import annotations

from phasegate.lab.faults import fault


def _forgejo(lab):
    return lab["registries"].forgejo


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


@fault("forgejo-unhealthy", component="registries",
       description="Forgejo's /api/healthz reports database:ping fail (HTTP 424)")
def _unhealthy(lab):
    with _forgejo(lab).fault(healthy=False):
        yield
