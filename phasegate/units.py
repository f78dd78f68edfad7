"""Sizes as Kubernetes and Traefik/nginx configs write them (no heavy imports: the lab uses them too)."""

from __future__ import annotations

import re
from decimal import Decimal

_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DEC: dict[str, Decimal | int] = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1, "k": 10**3, "M": 10**6,
    "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def quantity(q: str | int | float) -> Decimal:
    """A Kubernetes resource quantity ("1Gi", "384Mi", "500m", "1e3") in base units."""
    s = str(q).strip()
    m = re.fullmatch(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([KMGTPE]i|[numkMGTPE]?)", s)
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    num, unit = Decimal(m.group(1)), m.group(2)
    return num * (_BIN[unit] if unit in _BIN else Decimal(_DEC[unit]))


def size_bytes(s: str | int) -> int:
    """A body size as nginx/Traefik configs write it ("5g", "512m", "1024k", bytes); binary units."""
    m = re.fullmatch(r"\s*([0-9]+)\s*([kKmMgG]?)[bB]?\s*", str(s))
    if not m:
        raise ValueError(f"not a size: {s!r}")
    return int(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2).lower()]


