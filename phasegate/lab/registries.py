"""Lab component `registries`: registry-private (real distribution, htpasswd, TLS)
and Forgejo (phasegate.lab.forgejo: the v11 stand-in over its own distribution engine).
"""

from __future__ import annotations

import shutil

from phasegate.lab import seed
from phasegate.lab.distribution import DistributionRegistry
from phasegate.lab.faults import fault
from phasegate.lab.forgejo import ForgejoStandin

PRIVATE_USER = "viktor"

# Forgejo accounts of the lab, as the real environment uses them (infra-facts.md §2): viktor owns
# the packages and pushes with his own PAT (scripts/forgejo-migrate-orphan-images.sh:14-18 @ c2f8a300,
# .claude/CLAUDE.md:33 @ 3148d15d: "only the package owner can push, ci-pusher cannot write to
# viktor/*"); cluster-puller reads with a read:package PAT (kyverno registry-credentials.tf:38-39
# @ 6d5204db); the retention job deletes with viktor's PAT from 2026-06-09 (stacks/forgejo/cleanup.tf:7-17
# @ e0452611). viktor is a user, not an organisation, so no team grants anyone else a write: other
# users read his packages because he is public (Forgejo's default user visibility).
FORGEJO_OWNER = "viktor"
FORGEJO_PUSHER = "viktor"
FORGEJO_PULLER = "cluster-puller"
FORGEJO_CLEANER = "viktor"
FORGEJO_CI_USER = "ci-pusher"  # the plan's service user: holds PATs, owns no package of viktor's
FORGEJO_PATS = [
    # (user, token name, lab secret key, scopes, environment variable)
    (FORGEJO_PUSHER, "push", "forgejo_push_token", {"write:package"}, "PHASEGATE_FORGEJO_PUSH_TOKEN"),
    (FORGEJO_PULLER, "pull", "forgejo_pull_token", {"read:package"}, "PHASEGATE_FORGEJO_PULL_TOKEN"),
    (FORGEJO_CLEANER, "cleanup", "forgejo_cleanup_token", {"write:package"}, "PHASEGATE_FORGEJO_CLEANUP_TOKEN"),
]


class RegistriesLab:
    name = "registries"

    def __init__(self):
        self.private: DistributionRegistry | None = None
        self.forgejo_engine: DistributionRegistry | None = None
        self.forgejo: ForgejoStandin | None = None
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
        self.start_forgejo(lab)
        self.seed_forgejo()

    def start_forgejo(self, lab) -> None:
        # the engine: plain HTTP, no auth, loopback; only the stand-in talks to it
        self.forgejo_engine = DistributionRegistry(dir=lab.dir / "forgejo-engine", name="forgejo-engine").start()
        cert, key = lab.ca.issue("forgejo", "127.0.0.1", "localhost")
        f = ForgejoStandin(self.forgejo_engine, cert, key, default_creator=FORGEJO_PUSHER)
        for user in dict.fromkeys([FORGEJO_OWNER, FORGEJO_PUSHER, FORGEJO_PULLER, FORGEJO_CI_USER]):
            f.add_user(user)  # each a public user owning its own packages
        for user, name, secret, scopes, _ in FORGEJO_PATS:
            f.add_pat(user, name, lab.secret(secret), scopes)
        self.forgejo = f.start()

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
            self.private_seed = seed.seed_distribution(self.private, client, namespace="")

    def seed_forgejo(self) -> None:
        """The same seed as registry-private, under the owner `viktor/`, in the Forgejo engine.

        The seed's bytes do not depend on the namespace, and distribution's storage keeps
        blobs globally and repositories as links, so copying registry-private's storage
        with the repositories moved under `viktor/` gives byte for byte what
        `seed.seed(client, namespace="viktor/")` would push, in milliseconds instead of
        seconds of uploads (the stand-in derives its package versions from these files).
        Copied, never hard-linked: a bit-rot fault in one registry must not reach the other."""
        src, dst = self.private.v2, self.forgejo_engine.v2
        shutil.copytree(src / "blobs", dst / "blobs", dirs_exist_ok=True)
        for repo in (src / "repositories").iterdir():
            shutil.copytree(repo, dst / "repositories" / FORGEJO_OWNER / repo.name, dirs_exist_ok=True)
        self.forgejo_seed = seed.plan(f"{FORGEJO_OWNER}/")

    def stop(self) -> None:
        if self.forgejo:
            self.forgejo.stop()
        if self.forgejo_engine:
            self.forgejo_engine.stop()
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
            },
            "forgejo": {
                "url": self.forgejo.url,
                "host": self.forgejo.netloc,
                "owner": FORGEJO_OWNER,
                "ca_bundle": str(self._lab.ca.bundle),
                "pusher": {"username": FORGEJO_PUSHER, "secret": "forgejo_push_token"},
                "puller": {"username": FORGEJO_PULLER, "secret": "forgejo_pull_token"},
                "cleaner": {"username": FORGEJO_CLEANER, "secret": "forgejo_cleanup_token"},
            },
            # the address nodes reach Forgejo through (Traefik's LB IP in production): the stand-in itself
            "cluster": {"forgejo_mirrors": [self.forgejo.url]},
        }

    def env(self) -> dict:
        env = {"PHASEGATE_PRIVATE_REGISTRY_PASSWORD": self._lab.secret("private_registry_password")}
        for _, _, secret, _, var in FORGEJO_PATS:
            env[var] = self._lab.secret(secret)
        return env


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
