"""Lab component `registries`: registry-private (real distribution, htpasswd, TLS).

The Forgejo stand-in joins this component (it fronts its own distribution engine).
"""

from __future__ import annotations

from phasegate.lab.distribution import DistributionRegistry

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
