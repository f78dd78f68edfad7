"""phasegate.mirror: hosts.toml read as containerd reads it, and the one registry probe every gate uses."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from phasegate import mirror
from phasegate.http import HttpSettings


def test_hosts_toml_as_containerd_reads_it():
    """containerd remotes/docker/config/hosts.go: default capabilities, skip_verify, ca (relative to the
    hosts.toml directory: makeAbsPath), override_path."""
    cfg = mirror.parse_hosts_toml('server = "https://forgejo.example"\n'
                                  '[host."https://10.0.20.203"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n'
                                  '[host."https://10.0.20.200/base"]\n  ca = "ca.crt"\n  override_path = true\n'
                                  '[host."https://push.example"]\n  capabilities = ["push"]\n')
    assert cfg.server == "https://forgejo.example"
    first, second = cfg.pull_hosts()  # push-only tables are not tried for a pull
    assert (first.api_root(), first.tls()) == ("https://10.0.20.203/v2", "skip_verify = true")
    assert (second.api_root(), second.capabilities) == ("https://10.0.20.200/base", ("pull", "resolve", "push"))
    assert mirror.ca_path("/etc/containerd/certs.d/forgejo.example/hosts.toml", "ca.crt") == \
        "/etc/containerd/certs.d/forgejo.example/ca.crt"
    assert mirror.ca_path("/etc/containerd/certs.d/x/hosts.toml", "/etc/ssl/ca.pem") == "/etc/ssl/ca.pem"


class _Handler(BaseHTTPRequestHandler):
    answers = {
        "/registry/v2/": (200, {"Docker-Distribution-API-Version": "registry/2.0"}, b"{}"),
        "/forgejo/v2/": (401, {"WWW-Authenticate": 'Bearer realm="https://forgejo.example/v2/token",service="x"'},
                         b"{}"),
        "/traefik/v2/": (404, {"Content-Type": "text/plain"}, b"404 page not found\n"),
        "/web/v2/": (200, {"Content-Type": "text/html"}, b"<html>hello</html>"),
        "/login/v2/": (401, {"WWW-Authenticate": "Negotiate"}, b""),
    }

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.server.paths.append(self.path)
        code, headers, body = self.answers.get(self.path, (500, {}, b"unexpected path"))
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    s = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    s.paths = []
    threading.Thread(target=s.serve_forever, daemon=True).start()
    yield s
    s.shutdown()


@pytest.mark.parametrize("root, ok, words", [
    ("registry", True, ["HTTP 200", "registry/2.0"]),
    ("forgejo", True, ["HTTP 401", "Bearer realm="]),
    ("traefik", False, ["HTTP 404", "404 page not found"]),
    ("web", False, ["HTTP 200", "no Docker-Distribution-API-Version header"]),
    ("login", False, ["HTTP 401"]),
])
def test_the_registry_probe(server, root, ok, words):
    url = f"http://127.0.0.1:{server.server_address[1]}/{root}"
    a = mirror.registry_answer(mirror.HostEntry(url).api_root(), HttpSettings())
    assert a.is_registry is ok and all(w in a.seen for w in words), a
    assert server.paths[-1] == f"/{root}/v2/"  # never /v2/v2/


def test_a_mirror_that_answers_404_is_named_with_the_fallback(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/traefik"
    text = f'server = "https://forgejo.example"\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n'
    problems = mirror.judge_node("k8s-node1", "/etc/containerd/certs.d/forgejo.example/hosts.toml", text, {url},
                                 lambda h: mirror.registry_answer(h.api_root(), HttpSettings(), verify=not h.skip_verify))
    (line,) = problems
    assert "skip_verify = true" in line and "HTTP 404" in line and "falls back to server https://forgejo.example" in line
