"""Pipeline-config judging and tag derivation (no lab servers needed)."""

from __future__ import annotations

import datetime as dt

import pytest

from phasegate import config, dual_push
from phasegate.forgejo_repos import Commit
from phasegate.lab.forgejo.repos import pipeline_yaml
from phasegate.verdict import GateFailed


@pytest.fixture(scope="module")
def inv():
    return config.load()


def _shape(inv):
    return {"private_registry": {"host": inv.private_registry.host},
            "forgejo": {"host": inv.forgejo.host, "owner": inv.forgejo.owner}}


def test_dual_push_pipeline_passes(inv):
    p = dual_push.project(inv, "payslip-ingest")
    assert dual_push.check_pipeline(inv, p, pipeline_yaml(_shape(inv), p.image), "viktor/payslip-ingest/.woodpecker.yml") == "build-and-push"


def test_single_registry_fails_with_file_and_line(inv):
    p = dual_push.project(inv, "freedify")
    with pytest.raises(GateFailed) as e:
        dual_push.check_pipeline(inv, p, pipeline_yaml(_shape(inv), p.image, private=False), "viktor/freedify/.woodpecker.yml")
    assert "viktor/freedify/.woodpecker.yml:12" in str(e.value) and "no registry-private repo" in str(e.value)


def test_clear_text_password_names_line_not_value(inv):
    p = dual_push.project(inv, "payslip-ingest")
    text = pipeline_yaml(_shape(inv), p.image, clear_text=True)
    line = next(i + 1 for i, t in enumerate(text.splitlines()) if "hunter2" in t)
    with pytest.raises(GateFailed) as e:
        dual_push.check_pipeline(inv, p, text, "f.yml")
    assert f"f.yml:{line}" in str(e.value) and "hunter2" not in str(e.value)


def test_real_shape_of_build_ci_image(inv):
    """The infra repo's build-ci-image.yml shape: registry with :5050, tags list, dual logins."""
    text = """
steps:
  - name: build-and-push
    image: woodpeckerci/plugin-docker-buildx
    settings:
      repo:
        - registry.viktorbarzin.me:5050/infra-ci
        - forgejo.viktorbarzin.me/viktor/infra-ci
      logins:
        - registry: registry.viktorbarzin.me:5050
          username:
            from_secret: registry_user
          password:
            from_secret: registry_password
        - registry: forgejo.viktorbarzin.me
          username:
            from_secret: forgejo_user
          password:
            from_secret: forgejo_push_token
"""
    assert dual_push.check_pipeline(inv, dual_push.project(inv, "infra-ci"), text, "x") == "build-and-push"


def test_tag_template(inv):
    c = Commit("0123456789abcdef0123456789abcdef01234567", dt.datetime.now(dt.UTC))
    assert dual_push.image_tag(inv.dual_push.tag_template, c) == "01234567"
