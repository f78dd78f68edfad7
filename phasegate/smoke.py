"""Phase 0 on Forgejo's registry: each account does exactly its job with the smoke package.

The pusher (the owner's write:package PAT) logs in and pushes `<owner>/<smoke_image>:<smoke_tag>`, the
puller (read:package) pulls every byte of it and is refused a push, the cleaner deletes it through the
package API, after which neither the package API nor the registry knows the tag. Forgejo's packages
belong to their owner (services/context/package.go): a non-owner pusher is refused, and that is a
finding of these gates, not an outage. The judges receive their clients: `Accounts` (one registry
client per inventory account) and a package API client (phasegate.forgejo).
"""

from __future__ import annotations

from dataclasses import dataclass

from phasegate import integrity
from phasegate.forgejo import Forgejo, SmokePackage
from phasegate.oci import Login, NotFound, RegistryClient, registry_login
from phasegate.verdict import AuthError, GateFailed, check

ROLES = ("pusher", "puller", "cleaner")  # accounts of [forgejo] in the inventory


def account(inv, role: str):
    if role not in ROLES:
        raise ValueError(f"unknown Forgejo account {role!r} in a step (known: {', '.join(ROLES)})")
    return getattr(inv.forgejo, role)


class Accounts:
    """Forgejo's registry as each inventory account: one phasegate.oci client per role, opened when first
    asked for, closed together."""

    def __init__(self, inv):
        self.inv = inv
        self._clients: dict[str, RegistryClient] = {}

    def __call__(self, role: str) -> RegistryClient:
        account(self.inv, role)
        if role not in self._clients:
            self._clients[role] = RegistryClient.from_inventory(self.inv, "forgejo", role)
        return self._clients[role]

    def user(self, role: str) -> str:
        return account(self.inv, role).username

    def close(self) -> None:
        for c in self._clients.values():
            c.close()


# -- login ---------------------------------------------------------------------


def log_in(accounts: Accounts, role: str) -> Login:
    """`docker login` as `role`: a refused login is a finding (its PAT gets no token)."""
    inv = accounts.inv
    try:
        return registry_login(accounts(role))
    except AuthError as e:
        raise GateFailed(expected=f"{accounts.user(role)} logs in to the registry (its PAT gets a token)", seen=str(e),
                         where=f"{inv.forgejo.url}/v2/") from None


def judge_challenge(login: Login, inv) -> None:
    realm = f"{inv.forgejo.url}/v2/token"
    check(login.scheme == "bearer" and login.params.get("realm") == realm,
          expected=f'a 401 with WWW-Authenticate: Bearer realm="{realm}"',
          seen=login.challenge or "no challenge (the ping answered without asking for credentials)",
          where=f"GET {inv.forgejo.url}/v2/")


def judge_token(login: Login, inv, role: str) -> None:
    check(login.token_status == 200, expected=f"HTTP 200 with a token for {account(inv, role).username}",
          seen=f"HTTP {login.token_status}" if login.token_status else "no token requested",
          where=login.token_url or f"{inv.forgejo.url}/v2/token")


def judge_ping(login: Login, inv, status: int) -> None:
    check(login.ping_status == status, expected=f"HTTP {status}", seen=f"HTTP {login.ping_status}",
          where=f"GET {inv.forgejo.url}/v2/ with the token")


# -- the smoke package -----------------------------------------------------------


def clean_slate(inv, settings, smoke: SmokePackage, at_teardown) -> None:
    """No version of the smoke package left: its removal registered first (`at_teardown(fn, what)`: it runs also
    when a later step fails), then the leftovers swept, as the pusher (the owner who pushed it) or else the
    cleaner, whichever is not refused."""
    api = smoke.housekeeper(inv, settings)

    def cleanup():
        try:
            smoke.sweep(api)
        finally:
            api.close()

    at_teardown(cleanup, smoke.ref)
    smoke.sweep(api)
    left = [v.version for v in api.package_versions(smoke.image)]
    check(not left, expected=f"no version of {smoke.repository} left after the sweep",
          seen=f"versions still listed: {', '.join(left)}", where=f"{inv.forgejo.url}/api/v1/packages/{smoke.owner}")


def push(accounts: Accounts, role: str, smoke: SmokePackage) -> str:
    """The smoke image pushed as `role`; its digest. A refused push is a finding (the pusher's one job)."""
    try:
        return accounts(role).push(smoke.repository, smoke.build(), tag=smoke.tag)
    except AuthError as e:
        raise GateFailed(expected=f"{accounts.user(role)} pushes {smoke.ref} (the owner's write:package PAT)",
                         seen=str(e), where=f"{accounts.inv.forgejo.host}/{smoke.ref}") from None


def judge_pull(accounts: Accounts, role: str, smoke: SmokePackage) -> None:
    """`role` reads the smoke image's manifest and every blob, each matching its digest."""
    user, host = accounts.user(role), accounts.inv.forgejo.host
    try:
        result = integrity.check_image(accounts(role), smoke.repository, smoke.tag, mode="verify")
    except AuthError as e:  # e.g. the owner made private: other users may no longer read
        raise GateFailed(expected=f"{user} reads {smoke.ref} (read:package, the owner public or limited)",
                         seen=str(e), where=f"{host}/{smoke.ref}") from None
    result.require_intact(f"{smoke.ref} as {user}")
    image = smoke.build()
    check(result.manifests >= 1 and result.blobs == len(image.blobs()),
          expected=f"{user} pulls the manifest and all {len(image.blobs())} blobs, each matching its digest",
          seen=result.summary(), where=f"{host}/{smoke.ref}@{image.digest}")


def judge_push_refused(accounts: Accounts, role: str, smoke: SmokePackage) -> None:
    """`role` (a read:package PAT) is refused a push with 401/403."""
    user = accounts.user(role)
    try:
        digest = accounts(role).push(smoke.repository, smoke.build(), tag=smoke.tag)
    except AuthError:
        return  # 401/403: what a read:package PAT must get
    raise GateFailed(expected=f"{user}'s push refused with 401/403 (a read:package PAT)",
                     seen=f"push accepted: {smoke.ref}@{digest}", where=f"{accounts.inv.forgejo.host}/{smoke.ref}")


@dataclass(frozen=True)
class Deletion:
    """A DELETE of the smoke tag through the package API, as one account: what it answered."""

    role: str
    user: str
    status: int
    message: str


def delete(inv, settings, smoke: SmokePackage, role: str) -> Deletion:
    with smoke.packages(inv, settings, user=role) as api:
        status, message = api.try_delete(smoke.image, smoke.tag)
    return Deletion(role, account(inv, role).username, status, message)


def judge_deletion(deletion: Deletion, inv, smoke: SmokePackage, status: int) -> None:
    check(deletion.status == status, expected=f"HTTP {status} to {deletion.user}'s DELETE",
          seen=f"HTTP {deletion.status}" + (f" ({deletion.message})" if deletion.message else ""),
          where=f"DELETE {inv.forgejo.url}/api/v1/packages/{smoke.owner}/container/{smoke.image}/{smoke.tag}")


def judge_gone_from_package_api(api: Forgejo, inv, smoke: SmokePackage) -> None:
    """The package API (as the puller) neither serves nor lists the smoke tag."""
    one = api.get(smoke.image, smoke.tag)
    listed = [v.version for v in api.package_versions(smoke.image) if v.version == smoke.tag]
    check(one is None and not listed, expected=f"{smoke.ref} unknown to the package API (404, not listed)",
          seen=f"still there: GET {'200' if one else '404'}, listed {len(listed)} time(s)",
          where=f"{inv.forgejo.url}/api/v1/packages/{smoke.owner}/container/{smoke.image}/{smoke.tag}")


def judge_gone_from_registry(client: RegistryClient, inv, smoke: SmokePackage) -> None:
    """The registry (as the puller) answers 404 for the smoke tag and does not list it."""
    head = client.head_manifest(smoke.repository, smoke.tag)
    try:
        tags = client.tags(smoke.repository)
    except NotFound:
        tags = []
    check(head.status == 404 and smoke.tag not in tags,
          expected=f"HEAD {smoke.ref} 404 and {smoke.tag!r} not in tags/list",
          seen=f"HEAD {head.status}{' ' + head.digest if head.digest else ''}, tags/list "
               f"{'has' if smoke.tag in tags else 'lacks'} it",
          where=f"{inv.forgejo.host}/v2/{smoke.repository}/manifests/{smoke.tag}")
