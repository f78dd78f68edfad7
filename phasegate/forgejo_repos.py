"""Forgejo's repository API: commits, commit statuses and raw files (Phase 1 gates).

Separate from phasegate.forgejo (the package API) so the two areas keep to
their own functions; the wire conventions are the same: `Authorization:
token <PAT>` (a `Secret`, revealed only on the wire), every call through
phasegate.http.client (timeouts, retries for reads, read-only guard,
redacted transcript). A 404 is an answer (`None`), never retried.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from dataclasses import dataclass

from phasegate import http
from phasegate.forgejo import TokenAuth, _json
from phasegate.secrets import Secret
from phasegate.verdict import Broken


@dataclass(frozen=True)
class Commit:
    sha: str
    created: dt.datetime
    message: str = ""

    @property
    def short(self) -> str:
        return self.sha[:8]


def _time(s: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class ForgejoRepos:
    def __init__(self, client):
        self.http = client

    @classmethod
    def connect(cls, url: str, token: Secret | None, settings: http.HttpSettings, *, ca_bundle: str = "") -> ForgejoRepos:
        return cls(http.client(settings, base_url=url, ca_bundle=ca_bundle, auth=TokenAuth(token) if token else None))

    @classmethod
    def from_inventory(cls, inventory, settings: http.HttpSettings) -> ForgejoRepos:
        """As the inventory's repository reader (`[dual_push] repo_reader`)."""
        reader = inventory.dual_push.repo_reader
        return cls.connect(inventory.forgejo.url, inventory.secret(reader.secret), settings,
                           ca_bundle=inventory.forgejo.ca_bundle)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ForgejoRepos:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @staticmethod
    def _repo(full_name: str) -> str:
        owner, _, name = full_name.partition("/")
        return f"/api/v1/repos/{urllib.parse.quote(owner)}/{urllib.parse.quote(name)}"

    def _get(self, url_path: str, what: str, **params):
        r = self.http.get(url_path, params={k: v for k, v in params.items() if v not in (None, "")})
        if r.status_code == 404:
            return None
        if r.status_code != 200:
            raise http.status_error(r, what)
        return r

    def commits(self, repo: str, *, limit: int = 10, sha: str = "", path: str = "") -> list[Commit] | None:
        """Newest first; None when the repository does not exist (or is not visible)."""
        r = self._get(f"{self._repo(repo)}/commits", f"commits of {repo}", limit=limit, sha=sha, path=path,
                      stat="false", verification="false", files="false")
        if r is None:
            return None
        out = []
        what = f"commits of {repo}"
        body = _json(r, what)
        try:
            for c in body:
                commit = c.get("commit") or {}
                when = (commit.get("committer") or {}).get("date") or c.get("created", "")
                out.append(Commit(c["sha"], _time(when), (commit.get("message") or "").splitlines()[0] if commit.get("message") else ""))
        except (KeyError, TypeError, AttributeError, ValueError) as e:  # an answer of the wrong shape: one line
            raise Broken(f"{what}: unexpected answer ({type(e).__name__}: {e})") from None
        return out

    def status(self, repo: str, sha: str, context: str = "") -> str:
        """The commit's combined state (success, pending, failure, error), or one context's state; "" if none."""
        r = self._get(f"{self._repo(repo)}/commits/{sha}/status", f"status of {repo}@{sha[:8]}")
        if r is None:
            return ""
        body = _json(r, f"status of {repo}@{sha[:8]}")
        if not isinstance(body, dict):
            raise Broken(f"status of {repo}@{sha[:8]}: answer is not a JSON object")
        if not context:
            return str(body.get("state", ""))
        for s in body.get("statuses") or []:
            if s.get("context") == context:
                return str(s.get("status") or s.get("state") or "")
        return ""

    def raw(self, repo: str, path: str, ref: str = "") -> str | None:
        """A file's text from the raw endpoint; None when the file (or repository) does not exist."""
        quoted = "/".join(urllib.parse.quote(p) for p in path.split("/"))
        r = self._get(f"{self._repo(repo)}/raw/{quoted}", f"{repo}:{path}", ref=ref)
        return None if r is None else r.text
