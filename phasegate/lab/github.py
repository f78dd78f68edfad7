"""Lab component `github`: a stand-in for GitHub's public REST API (repositories only).

No GitHub can run here, so this serves the one call the Phase 3 gate makes,
`GET /repos/{owner}/{repo}`, with GitHub's answer shape (the fields of the
"full repository" object the gate and a human reader use, the API-version and
rate-limit headers, GitHub's 404 body), over TLS with the lab CA.
Repositories start archived (the lab's default state is "after cutover");
the fault `github-repo-not-archived` un-archives one.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from phasegate.lab.faults import fault

OWNER = "ViktorBarzin"
REPOS = {"beads-server": "beadboard", "claude-memory-mcp": "claude-memory-mcp"}  # project -> GitHub repository
API_VERSION = "2022-11-28"


class _Handler(BaseHTTPRequestHandler):
    server_version = "github.com"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        self.server.standin.log.append(f"{self.command} {self.path}")

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body, indent=2).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-GitHub-Api-Version-Selected", API_VERSION)
        self.send_header("X-RateLimit-Limit", "60")
        self.send_header("X-RateLimit-Remaining", "59")
        self.send_header("X-RateLimit-Resource", "core")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 5 and parts[0] == "repos" and parts[3:] == ["actions", "workflows"]:
            flows = self.server.standin.workflows(parts[1], parts[2])
            if flows is not None:
                self._send(200, {"total_count": len(flows), "workflows": flows})
                return
        repo = None
        if len(parts) == 3 and parts[0] == "repos":
            repo = self.server.standin.repo(parts[1], parts[2])
        if repo is None:
            self._send(404, {"message": "Not Found",
                             "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository",
                             "status": "404"})
            return
        self._send(200, repo)

    do_HEAD = do_GET

    def _refuse(self):
        self._send(404, {"message": "Not Found", "status": "404"})

    do_POST = do_PATCH = do_PUT = do_DELETE = _refuse


class GitHubStandin:
    name = "github"

    def __init__(self):
        self.archived: dict[str, bool] = {f"{OWNER}/{r}": True for r in REPOS.values()}
        # GitHub Actions workflow states (docs.github.com/rest/actions/workflows); beadboard's was disabled in
        # Phase 1 (plan line 95); its file name is the lab's assumption
        self.workflow_state: dict[str, dict[str, str]] = {f"{OWNER}/beadboard": {".github/workflows/build.yml": "disabled_manually"},
                                                          f"{OWNER}/claude-memory-mcp": {}}
        self.log: list[str] = []
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def repo(self, owner: str, name: str) -> dict | None:
        full = next((k for k in self.archived if k.lower() == f"{owner}/{name}".lower()), None)
        if full is None:
            return None
        o, n = full.split("/")
        ident = abs(hash(full)) % 10**9
        base = f"https://api.github.com/repos/{full}"
        stamp = "2026-05-20T10:00:00Z"
        return {
            "id": ident, "node_id": f"R_kgDO{ident}", "name": n, "full_name": full, "private": False,
            "owner": {"login": o, "id": 1000, "type": "User", "url": f"https://api.github.com/users/{o}"},
            "html_url": f"https://github.com/{full}", "description": f"{n} (lab)", "fork": False,
            "url": base, "created_at": "2024-01-01T00:00:00Z", "updated_at": stamp, "pushed_at": stamp,
            "default_branch": "main", "visibility": "public", "archived": self.archived[full], "disabled": False,
            "open_issues_count": 0, "topics": [], "has_issues": True,
        }

    def workflows(self, owner: str, name: str) -> list[dict] | None:
        full = next((k for k in self.workflow_state if k.lower() == f"{owner}/{name}".lower()), None)
        if full is None:
            return None
        out = []
        for i, (path, state) in enumerate(sorted(self.workflow_state[full].items())):
            out.append({"id": 1000 + i, "node_id": f"W_kwDO{1000 + i}", "name": path.rsplit("/", 1)[-1].split(".")[0],
                        "path": path, "state": state, "created_at": "2024-01-01T00:00:00Z",
                        "updated_at": "2026-05-07T16:00:00Z", "url": f"https://api.github.com/repos/{full}/actions/workflows/{1000 + i}",
                        "html_url": f"https://github.com/{full}/blob/main/{path}",
                        "badge_url": f"https://github.com/{full}/workflows/build/badge.svg"})
        return out

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"https://{host}:{port}"

    def start(self, lab) -> None:
        cert, key = lab.ca.issue("github", "127.0.0.1", "localhost")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        self._ca = str(lab.ca.bundle)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.server.standin = self
        self._thread = threading.Thread(target=self.server.serve_forever, name="lab-github", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def inventory(self) -> dict:
        return {"github": {"api_url": self.url, "ca_bundle": self._ca,
                           "archived_after_cutover": {p: f"{OWNER}/{r}" for p, r in REPOS.items()},
                           "workflows_disabled": {"beads-server": f"{OWNER}/beadboard"}}}

    def env(self) -> dict:
        return {}


@fault("github-repo-not-archived", component="github",
       description="beadboard's GitHub repository is still active (archived: false) after its cutover")
def _unarchived(lab):
    gh = lab["github"]
    gh.archived[f"{OWNER}/beadboard"] = False
    try:
        yield
    finally:
        gh.archived[f"{OWNER}/beadboard"] = True


@fault("github-workflow-still-active", component="github",
       description="beadboard's GitHub Actions workflow still runs after Phase 1 (state active): it keeps pushing to GHCR")
def _workflow_active(lab):
    gh = lab["github"]
    flows = gh.workflow_state[f"{OWNER}/beadboard"]
    before = dict(flows)
    for path in flows:
        flows[path] = "active"
    try:
        yield
    finally:
        flows.clear()
        flows.update(before)
