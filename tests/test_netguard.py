"""The network guard makes the real hosts of the default inventory unreachable from tests."""

import socket

import httpx
import pytest

from tests.netguard import NetworkRefused


def test_connect_to_a_private_address_is_refused():
    s = socket.socket()
    with pytest.raises(NetworkRefused):
        s.connect(("10.0.20.10", 5050))  # guard: the real registry VM must be unreachable
    s.close()


def test_name_lookup_of_a_real_host_is_refused():
    with pytest.raises(socket.gaierror, match="netguard"):
        socket.getaddrinfo("forgejo.viktorbarzin.me", 443)  # guard: no DNS query leaves


def test_httpx_to_the_default_inventory_is_refused():
    from phasegate import config
    from phasegate.http import HttpSettings, client
    from phasegate.verdict import Unreachable

    inv = config.load(config.DEFAULT_INVENTORY)
    with client(HttpSettings(retries=0, connect=1, read=1)) as c, pytest.raises(Unreachable, match="netguard"):
        c.get(f"{inv.forgejo.url}/api/healthz")  # guard trips before any packet


def test_loopback_is_allowed():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=1)
    c.close()
    srv.close()
