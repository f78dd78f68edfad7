"""Read-only is enforced, not promised: every @readonly gate runs against the lab and the lab saw no write.

Write evidence comes from the lab servers themselves, not from the suite:
the access logs of the real docker-registry processes (registry-private and
the Forgejo stand-in's engine), the Forgejo stand-in's request log, the Kubernetes API stand-in's request
log, and any other lab component that offers the same `mark()` /
`writes(since)` pair.
A second test runs a read-only gate that tries to push and proves the guard
stopped it before a byte left (a verdict, and still no write in the lab).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import REPO
from tests.test_gates_bad_servers import ALL_PHASES

SAFE = ("GET", "HEAD", "OPTIONS")

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]


class WriteEvidence:
    """What every lab server was asked to change since `start()`."""

    def __init__(self, lab):
        self.lab = lab
        self._logs: dict[str, int] = {}
        self._marks: dict[str, int] = {}

    def _registries(self):
        regs = self.lab["registries"]
        for name in ("private", "forgejo_engine"):
            reg = getattr(regs, name, None)
            if reg is not None:
                yield name, reg

    def _counters(self):
        regs = self.lab["registries"]
        if getattr(regs, "forgejo", None) is not None:
            yield "forgejo", regs.forgejo
        for name, comp in self.lab.components.items():
            if name != "registries" and hasattr(comp, "mark") and hasattr(comp, "writes"):
                yield name, comp

    def start(self) -> WriteEvidence:
        self._logs = {name: len(reg.access_log()) for name, reg in self._registries()}
        self._marks = {name: c.mark() for name, c in self._counters()}
        return self

    def writes(self) -> list[str]:
        seen = []
        for name, reg in self._registries():
            for line in reg.access_log()[self._logs.get(name, 0):]:
                request = line.split('"', 2)[1] if line.count('"') >= 2 else line
                if request.split(" ", 1)[0] not in SAFE:
                    seen.append(f"{name} access log: {request}")
        for name, c in self._counters():
            seen += [f"{name}: {w.method} {w.path}" for w in c.writes(self._marks.get(name, 0))]
        return seen

    def sources(self) -> list[str]:
        return [n for n, _ in self._registries()] + [n for n, _ in self._counters()]


def test_every_readonly_gate_writes_nothing(lab, gates):
    evidence = WriteEvidence(lab).start()
    run = gates(f"({ALL_PHASES}) and readonly")
    assert run.results, f"no @readonly gate collected\n{run.summary()}"
    assert all("readonly" in r["markers"] for r in run.results)
    assert not run.leaks, run.leaks
    writes = evidence.writes()
    assert not writes, f"read-only gates wrote to the lab ({len(writes)}):\n" + "\n".join(writes[:20])
    assert {"private", "forgejo", "cluster"} <= set(evidence.sources())


def test_write_evidence_sees_a_write(lab):
    """The evidence can fail: a DELETE of something that does not exist (a write that changes nothing)
    shows up in registry-private's access log, the Forgejo stand-in's and the Kubernetes API's request logs."""
    from kubernetes.client.exceptions import ApiException

    from phasegate.config import load
    from phasegate.http import GUARD
    from phasegate.kube import Kube
    from phasegate.lab.evil import WRONG_DIGEST
    from phasegate.oci import NotFound, RegistryClient, UnexpectedStatus
    from phasegate.verdict import AuthError

    evidence = WriteEvidence(lab).start()
    inv = load(lab.inventory_path)
    saved = dict(os.environ)
    os.environ.update(lab.env())
    try:
        for registry, user in (("private_registry", "user"), ("forgejo", "cleaner")):
            with RegistryClient.from_inventory(inv, registry, user) as c, GUARD.writes_allowed("evidence self-test"):
                with pytest.raises((NotFound, UnexpectedStatus, AuthError)):
                    c.delete_manifest(f"{inv.forgejo.owner}/guard-probe", WRONG_DIGEST)
        kube = Kube.from_inventory(inv)
        try:
            with GUARD.writes_allowed("evidence self-test"), pytest.raises(ApiException) as e:
                kube.core.delete_namespace(f"{inv.cluster.test_prefix}guard-probe")
            assert e.value.status == 404
        finally:
            kube.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    writes = evidence.writes()
    assert any(w.startswith("private access log: DELETE") for w in writes), writes
    assert any(w.startswith("forgejo: DELETE") for w in writes), writes
    assert any(w.startswith("cluster: DELETE /api/v1/namespaces/") for w in writes), writes


PROBE = '''
import pytest
from phasegate.oci import RegistryClient


@pytest.mark.phase0
@pytest.mark.readonly
def test_readonly_gate_that_tries_to_push(inventory):
    with RegistryClient.from_inventory(inventory, "forgejo", "pusher") as c:
        c.push_blob(f"{inventory.forgejo.owner}/guard-probe", b"must never arrive")
'''


def test_readonly_gate_that_writes_is_refused_before_the_wire(lab, tmp_path):
    (tmp_path / "test_guard_probe.py").write_text(PROBE)
    evidence = WriteEvidence(lab).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
    env.update(lab.env())
    env["PYTHONPATH"] = str(REPO)
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.netguard", "-p", "no:cacheprovider",
                        f"--inventory={lab.inventory_path}", f"--rootdir={tmp_path}", "-c", os.devnull, "-q",
                        str(tmp_path / "test_guard_probe.py")],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "BROKEN (WriteRefused)" in p.stdout and "read-only" in p.stdout, p.stdout
    assert "Traceback" not in p.stdout
    assert not evidence.writes(), evidence.writes()
