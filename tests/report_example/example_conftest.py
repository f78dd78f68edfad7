"""Fixtures of the report example: a loopback HTTP server and a port nobody listens on."""

import http.server
import threading

import pytest

pytest_plugins = []


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.path == "/v2/"
        body = b"{}" if ok else b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture(scope="session")
def example_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.fixture(scope="session")
def dead_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def unbuildable_client(request):
    # a fixture that fails before the scenario starts (as a cluster client whose API is down would)
    if "client_cannot_be_built" in request.node.name:
        from phasegate.verdict import Unreachable

        raise Unreachable("GET https://127.0.0.1:1/api: cannot connect (connection refused)")
