"""Loopback-only network guard for the suite's own tests (and the gate runs they start).

Any connect() to an address outside 127.0.0.0/8 or ::1, and any name lookup
other than `localhost` or a loopback literal, raises before a packet or a DNS
query leaves the machine. The default inventory names real hosts; this guard
makes it impossible for a test mistake to reach them.

Loaded as a pytest plugin (`-p tests.netguard`) so gate subprocesses get it too.
"""

from __future__ import annotations

import ipaddress
import socket

_installed = False
_orig = {}


class NetworkRefused(OSError):
    pass


def _is_loopback_host(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]")
    if host in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(family, address) -> None:
    if family == getattr(socket, "AF_UNIX", None) or isinstance(address, (str, bytes)):
        return
    host = address[0]
    try:
        ok = ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise NetworkRefused(f"netguard: refused connection to {address!r} (loopback only)")


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    _orig["connect"] = socket.socket.connect
    _orig["connect_ex"] = socket.socket.connect_ex
    _orig["getaddrinfo"] = socket.getaddrinfo
    _orig["gethostbyname"] = socket.gethostbyname
    _orig["gethostbyname_ex"] = socket.gethostbyname_ex

    def connect(self, address):
        _check_address(self.family, address)
        return _orig["connect"](self, address)

    def connect_ex(self, address):
        _check_address(self.family, address)
        return _orig["connect_ex"](self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not _is_loopback_host(host):
            raise socket.gaierror(socket.EAI_NONAME, f"netguard: refused name lookup of {host!r} (loopback only)")
        return _orig["getaddrinfo"](host, *args, **kwargs)

    def gethostbyname(host):
        if not _is_loopback_host(host):
            raise socket.gaierror(socket.EAI_NONAME, f"netguard: refused name lookup of {host!r}")
        return _orig["gethostbyname"](host)

    def gethostbyname_ex(host):
        if not _is_loopback_host(host):
            raise socket.gaierror(socket.EAI_NONAME, f"netguard: refused name lookup of {host!r}")
        return _orig["gethostbyname_ex"](host)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex


def pytest_configure(config) -> None:
    install()


install()
