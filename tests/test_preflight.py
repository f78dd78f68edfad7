"""Cutover pre-flight (issue 16.3): each reference a flipped stack pulls is on Forgejo, same digest, intact."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from phasegate import preflight
from phasegate.infra_repo import InfraCheckout
from phasegate.oci import Head
from phasegate.verdict import GateFailed

OLD, NEW = "registry.example.test", "forgejo.example.test"


class Registry:
    """What a registry serves: {(repository, tag): digest}; HEAD only (integrity is patched out here)."""

    def __init__(self, tags):
        self.tags = tags

    def head_manifest(self, repository, reference):
        d = self.tags.get((repository, reference))
        return Head(200, d, 100, "application/vnd.oci.image.manifest.v1+json") if d else Head(404)


def _stack(root: Path, image: str) -> InfraCheckout:
    p = root / "stacks/app/main.tf"
    p.parent.mkdir(parents=True)
    p.write_text(textwrap.dedent(f'''
        variable "image_tag" {{
          default = "4f70681d"
        }}
        locals {{
          image = "{image}:${{var.image_tag}}"
        }}
        resource "kubernetes_deployment" "app" {{
          spec {{
            template {{
              spec {{
                container {{
                  image = local.image
                }}
                container {{
                  image = "docker.io/library/busybox:1.36"
                }}
              }}
            }}
          }}
        }}
    '''))
    return InfraCheckout(root, old_hosts=[OLD], old_names=["registry-private"], new_host=NEW, owner="viktor")


@pytest.fixture(autouse=True)
def intact(monkeypatch):
    class R:
        broken = []
    monkeypatch.setattr(preflight.integrity, "check_image", lambda *a, **k: R())


def test_before_the_flip_the_pinned_tag_must_be_on_forgejo_with_the_same_digest(tmp_path):
    co = _stack(tmp_path, f"{OLD}/app")
    private = Registry({("app", "4f70681d"): "sha256:aa"})
    # only :latest was copied (forgejo-migrate-orphan-images.sh): the pinned tag is missing
    with pytest.raises(GateFailed) as e:
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "latest"): "sha256:aa"}), private)
    assert f"{NEW}/viktor/app:4f70681d is not on Forgejo (registry-private serves sha256:aa)" in str(e.value)
    with pytest.raises(GateFailed, match="Forgejo serves sha256:bb, registry-private sha256:aa"):
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "4f70681d"): "sha256:bb"}), private)
    assert preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "4f70681d"): "sha256:aa"}),
                           private) == ["app:4f70681d sha256:aa"]


def test_after_the_flip_and_the_decommission_forgejo_is_judged_alone(tmp_path):
    co = _stack(tmp_path, f"{NEW}/viktor/app")
    assert preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "4f70681d"): "sha256:aa"}),
                           Registry({}))
    with pytest.raises(GateFailed, match="nor on registry-private"):
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({}), Registry({}))
