"""Lab component `registries`: registry-private (real distribution, htpasswd, TLS).

The Forgejo stand-in joins this component (it fronts its own distribution engine).
"""

from __future__ import annotations

from phasegate.lab import seed
from phasegate.lab.distribution import DistributionRegistry
from phasegate.lab.faults import fault

PRIVATE_USER = "viktor"


class Registries:
    name = "registries"

    def __init__(self):
        self.private: DistributionRegistry | None = None
        self._lab = None

    def start(self, lab) -> None:
        self._lab = lab
        cert, key = lab.ca.issue("registry-private", "127.0.0.1", "localhost")
        self.private = DistributionRegistry(
            dir=lab.dir / "registry-private",
            name="registry-private",
            users={PRIVATE_USER: lab.secret("private_registry_password")},
            cert=cert,
            key=key,
            ca_bundle=lab.ca.bundle,
        ).start()
        self.seed_private()

    def private_client(self):
        """A phasegate.oci client for registry-private as its htpasswd user."""
        from phasegate.oci import RegistryClient
        from phasegate.secrets import Secret

        return RegistryClient(self.private.url, username=PRIVATE_USER,
                              password=Secret(self._lab.secret("private_registry_password"), "private_registry_password"),
                              ca_bundle=str(self._lab.ca.bundle))

    def seed_private(self) -> None:
        from phasegate.http import GUARD

        with self.private_client() as client, GUARD.writes_allowed("lab seed"):
            self.private_seed = seed.seed(client, namespace="", retag=seed.distribution_retag(self.private))

    def stop(self) -> None:
        if self.private:
            self.private.stop()

    def inventory(self) -> dict:
        p = self.private
        return {
            "private_registry": {
                "url": p.url,
                "host": p.netloc,
                "aliases": [f"localhost:{p.port}"],
                "ca_bundle": str(self._lab.ca.bundle),
                "user": {"username": PRIVATE_USER, "secret": "private_registry_password"},
            }
        }

    def env(self) -> dict:
        return {"PHASEGATE_PRIVATE_REGISTRY_PASSWORD": self._lab.secret("private_registry_password")}


# --------------------------------------------------------------------------
# Faults of registry-private's seeded integrity targets (phasegate.lab.seed)
# --------------------------------------------------------------------------


@fault("private-orphaned-index-child", component="registries",
       description="registry-private: an index child's revision link removed on disk (distribution#3324)")
def _private_orphaned_index_child(lab):
    with seed.orphaned_index_child(lab["registries"].private):
        yield


@fault("private-missing-layer", component="registries",
       description="registry-private: a layer blob's directory removed on disk")
def _private_missing_layer(lab):
    with seed.missing_layer(lab["registries"].private):
        yield


@fault("private-bitrot-layer", component="registries",
       description="registry-private: one byte flipped in a layer blob's data (HEAD 200, wrong bytes)")
def _private_bitrot_layer(lab):
    with seed.bitrot_layer(lab["registries"].private):
        yield
