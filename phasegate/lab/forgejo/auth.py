"""The Forgejo stand-in's accounts and authentication: users, organisations, personal access tokens
and their scopes, the registry's JWT (`/v2/token`), and who may read or write an owner's packages.

As Forgejo v11 answers (../shared/reference/forgejo-registry-v11-details.md): the /v2 auth group
(Basic under /v2/..., then the registry JWT), /api/v1's token/Bearer/Basic/?token= with the PAT's
scope checked per category, the three refusal styles (/v2's 401 `reqPackageAccess`, /api/v1's 403
JSON, the 401 `authGroup.Verify`), and `access()` as Forgejo's determineAccessMode.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets as _secrets
import time
from dataclasses import dataclass, field

from phasegate.lab.forgejo.knobs import Knobs
from phasegate.lab.forgejo.wire import API_VERSION_HEADER, HttpError, Request, Response, api_error, oci_error

PACKAGE_API_REALM = 'Basic realm="Gitea Package API"'
# /v2 permission or scope refusal: 401, body = the error's title (routers/api/packages/api.go:86-90,
# services/context/base.go:123-128 on Forgejo's v11.0 branch; reference/forgejo-registry-v11-details.md §0)
REQ_PACKAGE_ACCESS = "reqPackageAccess"
# /api/v1 permission refusal: 403 JSON (routers/api/v1/api.go reqPackageAccess)
PERMISSION_TEXT = "user should have specific permission or be a site admin"
# /api/v1 with a token that resolves to no user (reference/forgejo-registry-v11-details.md §7, corrected)
INVALID_TOKEN_TEXT = "user does not exist [uid: 0, name: ]"
AUTH_FAILED_TEXT = "authGroup.Verify"
TOKEN_TTL = dt.timedelta(hours=24)


# -- HS256 JWT (what Forgejo's packages service signs with its JWT_SECRET) ----


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _unb64url(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def jwt_encode(claims: dict, key: bytes) -> str:
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64url(sig)}"


def jwt_decode(token: str, key: bytes) -> dict | None:
    """Claims of a valid, unexpired HS256 token signed with `key`, else None."""
    try:
        head, body, sig = token.split(".")
        if json.loads(_unb64url(head)).get("alg") != "HS256":
            return None
        want = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(want, _unb64url(sig)):
            return None
        claims = json.loads(_unb64url(body))
    except Exception:
        return None
    now = time.time()
    if claims.get("exp", 0) < now or claims.get("nbf", 0) > now + 1:
        return None
    return claims


# -- users, tokens, owners ----------------------------------------------------


@dataclass
class User:
    name: str
    id: int
    password: str | None = None
    admin: bool = False

    def api(self, root: str) -> dict:
        return {
            "id": self.id, "login": self.name, "login_name": "", "full_name": "", "email": f"{self.name}@noreply.forgejo.test",
            "avatar_url": f"{root}avatars/{self.id}", "html_url": f"{root}{self.name}", "language": "", "is_admin": self.admin,
            "restricted": False, "active": True, "prohibit_login": False, "visibility": "public", "username": self.name,
        }


GHOST = User("Ghost", -1)


@dataclass
class Pat:
    """A personal access token. `scopes` as Forgejo writes them: read:package, write:package, all."""

    user: str
    name: str
    token: str
    scopes: frozenset[str]
    revoked: bool = False

    @property
    def scope_string(self) -> str:
        return ",".join(sorted(self.scopes))


@dataclass
class Owner:
    """A package owner: a user (its packages are written by that user only) or an organisation
    (written by members whose team grants Packages write)."""

    name: str
    visibility: str = "public"  # public | limited | private
    members: dict[str, str] = field(default_factory=dict)  # organisation: user -> read | write (team "Packages" unit)
    kind: str = "organization"  # user | organization


@dataclass(frozen=True)
class Principal:
    """Who a request is: a user (None = ghost) and the token scopes it is limited to (None = unrestricted)."""

    user: User | None
    scopes: frozenset[str] | None
    via: str  # pat | password | jwt | ghost


def has_scope(scopes: frozenset[str] | None, needed: str) -> bool:
    if scopes is None or "all" in scopes or needed in scopes:
        return True
    level, _, category = needed.partition(":")
    return level == "read" and f"write:{category}" in scopes


def parse_scopes(s: str) -> frozenset[str] | None:
    parts = frozenset(p.strip() for p in (s or "").split(",") if p.strip())
    return parts or None


class AccountBook:
    """The users, owners and PATs of one stand-in, and every authentication and permission decision."""

    def __init__(self, root_url: str, knobs: Knobs):
        self.root_url = root_url  # Forgejo's ROOT_URL (ends with /)
        self.knobs = knobs
        self.users: dict[str, User] = {}
        self.pats: dict[str, Pat] = {}
        self.owners: dict[str, Owner] = {}
        self.jwt_key = _secrets.token_bytes(32)

    # -- accounts --------------------------------------------------------------
    def add_user(self, name: str, password: str | None = None, admin: bool = False,
                 visibility: str = "public") -> User:
        """A user; also the owner of its own packages (Forgejo's default user visibility is public)."""
        u = User(name, len(self.users) + 1, password, admin)
        self.users[name] = u
        self.owners[name] = Owner(name, visibility, kind="user")
        return u

    def add_owner(self, name: str, visibility: str = "private", members: dict[str, str] | None = None) -> Owner:
        """An organisation whose members' team grants them Packages read or write."""
        o = self.owners[name] = Owner(name, visibility, dict(members or {}), kind="organization")
        return o

    def add_pat(self, user: str, name: str, token: str, scopes) -> Pat:
        if user not in self.users:
            raise KeyError(f"no user {user!r}")
        p = Pat(user, name, token, frozenset(scopes))
        self.pats[token] = p
        return p

    def pat(self, user: str, name: str) -> Pat:
        for p in self.pats.values():
            if p.user == user and p.name == name:
                return p
        raise KeyError(f"no token {name!r} of {user!r}")

    # -- authentication -------------------------------------------------------------
    def basic(self, cred: str) -> Principal | None:
        try:
            user, _, pw = base64.b64decode(cred.strip()).decode().partition(":")
        except Exception:
            return None
        token = user if pw in ("", "x-oauth-basic") else pw
        pat = self.pats.get(token)
        if pat and not pat.revoked:
            return Principal(self.users[pat.user], pat.scopes, "pat")
        u = self.users.get(user)
        if u and u.password and hmac.compare_digest(u.password, pw):
            return Principal(u, None, "password")
        return None

    def _auth_failed(self) -> HttpError:
        return HttpError(Response.text(AUTH_FAILED_TEXT, 401))

    def container_principal(self, req: Request) -> Principal | None:
        """Forgejo's /v2 auth group: Basic (only under /v2/...), then the registry JWT. None = no credentials."""
        auth = req.header("Authorization")
        if not auth:
            return None
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() == "basic" and req.path.startswith("/v2/"):
            p = self.basic(cred)
            if p is None:
                raise self._auth_failed()
            return p
        claims = jwt_decode(cred.strip(), self.jwt_key)
        if claims is None:
            raise self._auth_failed()
        uid = claims.get("UserID")
        user = next((u for u in self.users.values() if u.id == uid), None)
        if user is None and uid != GHOST.id:
            raise self._auth_failed()
        return Principal(user, parse_scopes(claims.get("Scope", "")), "jwt" if user else "ghost")

    def api_principal(self, req: Request, category: str = "package") -> Principal:
        """Authenticate an /api/v1 request like Forgejo (token/Bearer PAT, Basic, ?token=) and check
        the PAT's scope for `category` (read:<category> for GET/HEAD, write:<category> otherwise).
        Raises HttpError with Forgejo's JSON answer when it fails."""
        auth = req.header("Authorization")
        token = req.arg("token") or req.arg("access_token")
        p: Principal | None = None
        if auth:
            scheme, _, cred = auth.partition(" ")
            if scheme == "token" or scheme.lower() == "bearer":
                token = cred.strip()
            elif scheme.lower() == "basic":
                p = self.basic(cred)
                if p is None:
                    raise HttpError(self.api_error(401, "user does not exist"))
        if p is None and token:
            pat = self.pats.get(token)
            if pat is None or pat.revoked:
                raise HttpError(self.api_error(401, INVALID_TOKEN_TEXT))
            p = Principal(self.users[pat.user], pat.scopes, "pat")
        if p is None:
            raise HttpError(self.api_error(401, "token is required"))
        needed = f"{'read' if req.method in ('GET', 'HEAD') else 'write'}:{category}"
        if not has_scope(p.scopes, needed):
            raise HttpError(self.api_error(403, f"token does not have at least one of required scope(s): [{needed}]"))
        return p

    def api_error(self, status: int, message: str) -> Response:
        return api_error(self.root_url, status, message)

    # -- permission -------------------------------------------------------------------
    def access(self, principal: Principal | None, owner: str) -> str:
        """Permission level on an owner's packages: none | read | write. As Forgejo's
        determineAccessMode (services/context/package.go, go-gitea/gitea @ 0bd9aa0a; Forgejo v11
        services/context/package.go:106-145): a user's packages are written by that user only --
        another user's write:package PAT is refused -- and read by signed-in users when the owner
        is public or limited, by anonymous callers when public; an organisation's by its members
        at their team's Packages level, by others (read) when the organisation is visible to them.
        Site admins bypass every check."""
        o = self.owners.get(owner)
        if o is None:
            return "none"
        user = principal.user if principal else None
        if user is not None and user.admin:
            return "write"
        if o.kind == "user":
            if user is not None and user.name == o.name:
                return "write"
            if user is not None:
                return "read" if o.visibility in ("public", "limited") else "none"
            return "read" if o.visibility == "public" else "none"
        level = o.members.get(user.name, "none") if user is not None else "none"
        if level == "none" and (o.visibility == "public" or (o.visibility == "limited" and user is not None)):
            level = "read"
        return level

    def require(self, principal: Principal, owner: str, mode: str) -> None:
        """/v2's reqPackageAccess: 401 `reqPackageAccess` below the access (and the PAT scope) `mode` needs."""
        level = self.access(principal, owner)
        ok = level == "write" or (mode == "read" and level == "read")
        if ok and self.knobs.enforce_scopes and principal.via in ("pat", "jwt"):
            ok = has_scope(principal.scopes, f"{mode}:package")
        if not ok:
            raise HttpError(Response.text(REQ_PACKAGE_ACCESS, 401, [("WWW-Authenticate", PACKAGE_API_REALM)]))

    # -- the registry's token service ------------------------------------------------
    def challenge(self) -> Response:
        r = oci_error(401, "UNAUTHORIZED")
        r.headers.append(("WWW-Authenticate",
                          f'Bearer realm="{self.root_url}v2/token",service="container_registry",scope="*"'))
        return r

    def token(self, principal: Principal | None) -> Response:
        """GET /v2/token: a registry JWT for the caller (the ghost user without credentials)."""
        user = principal.user if principal else None
        now = int(time.time())
        # the PAT's scope travels in the JWT (Forgejo; Gitea 1.21 dropped it); empty = unrestricted
        scope = ",".join(sorted(principal.scopes or ())) if principal is not None else ""
        claims = {"exp": now + int(TOKEN_TTL.total_seconds()), "nbf": now, "UserID": user.id if user else GHOST.id,
                  "Scope": scope}
        return Response.json({"token": jwt_encode(claims, self.jwt_key)}, headers=[API_VERSION_HEADER])
