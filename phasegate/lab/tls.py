"""The lab's certificate authority: the suite verifies TLS in the lab as in production."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class LabCA:
    ca: trustme.CA
    dir: Path

    @classmethod
    def create(cls, dir: Path) -> LabCA:
        dir.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA(organization_name="phasegate lab CA")
        lab = cls(ca, dir)
        ca.cert_pem.write_to_path(str(lab.bundle))
        return lab

    @property
    def bundle(self) -> Path:
        return self.dir / "ca.pem"

    def issue(self, name: str, *hosts: str) -> tuple[Path, Path]:
        """(cert chain file, key file) for these names (IPs or DNS names)."""
        cert = self.ca.issue_cert(*hosts)
        chain = self.dir / f"{name}.crt"
        key = self.dir / f"{name}.key"
        chain.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        return chain, key
