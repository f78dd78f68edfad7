"""The lab's infra checkout is rendered from template files (phasegate/lab/infra_checkout/templates/).

Every template and part is used by some stage or fault, every placeholder is filled, and no template is
hidden from git (the lab runs from the checkout: the templates ship as tracked files beside its code).
"""

from __future__ import annotations

import subprocess

import pytest

from phasegate.lab import faults
from phasegate.lab.infra_checkout import STAGES, files, render

HOSTS = {"old": "registry.example:5050", "old_alias": "10.0.20.10:5050", "new": "forgejo.example", "owner": "viktor",
         "container": "registry-private", "mirror": "https://10.0.20.203"}


def _breaks() -> list[str]:
    return sorted(n for n, f in faults.known().items() if f.component == "infra_checkout")


def test_every_template_is_used_and_every_placeholder_filled(monkeypatch):
    used: set[str] = set()
    real = render.template

    def recording(rel: str):
        used.add(rel)
        return real(rel)

    monkeypatch.setattr(render, "template", recording)
    for stage in STAGES:
        for b in [None, *_breaks()]:
            for rel, text in files(stage, {b} if b else set(), HOSTS).items():
                assert "{{" not in text, f"{rel} ({stage}, {b}): a placeholder left"
    on_disk = {p.relative_to(render.TEMPLATES).as_posix() for p in render.TEMPLATES.rglob("*") if p.is_file()}
    assert on_disk - used == set(), "templates no stage or fault renders"
    assert used <= on_disk


def test_a_stray_placeholder_is_an_error():
    with pytest.raises(ValueError):
        render.FileTemplate("a {{name}} b").substitute({"name": "x"})  # no spaces: not a placeholder
    with pytest.raises(KeyError):
        render.FileTemplate("a {{ unknown }} b").substitute({})
    assert render.FileTemplate('x = "${var.tag}" {a = {b}}').substitute({}) == 'x = "${var.tag}" {a = {b}}'


def test_no_template_is_ignored_by_git():
    paths = [str(p) for p in render.TEMPLATES.rglob("*") if p.is_file()]
    r = subprocess.run(["git", "check-ignore", *paths], cwd=render.TEMPLATES, capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1 and not r.stdout, f"ignored by git: {r.stdout}"
