"""Faults of the Forgejo stand-in's storage (lab component `registries`): the seeded integrity targets
in the Forgejo engine broken on disk, with the same generic helpers registry-private uses
(phasegate.lab.seed)."""

from __future__ import annotations

from phasegate.lab import seed
from phasegate.lab.faults import fault
from phasegate.lab.registries import FORGEJO_OWNER


def _on_disk(name: str, helper):
    @fault(f"forgejo-{name}", component="registries",
           description=f"Forgejo engine: the seeded {name} target broken on disk ({helper.__doc__.splitlines()[0]})")
    def _make(lab):
        with helper(lab["registries"].forgejo_engine, namespace=f"{FORGEJO_OWNER}/"):
            yield

    return _make


for _name, _helper in seed.FAULT_HELPERS.items():
    _on_disk(_name, _helper)
