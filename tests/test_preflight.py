"""Cutover pre-flight (issue 16.3): each reference a flipped stack pulls is on Forgejo, same digest, intact."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from phasegate import config, preflight
from phasegate.infra_repo import InfraCheckout
from phasegate.oci import Head
from phasegate.verdict import Broken, GateFailed, TimedOut

OLD, NEW = "registry.example.test", "forgejo.example.test"


class Registry:
    """What a registry serves: {(repository, tag): digest}; HEAD only (integrity is patched out here)."""

    def __init__(self, tags):
        self.tags = tags

    def head_manifest(self, repository, reference):
        d = self.tags.get((repository, reference))
        return Head(200, d, 100, "application/vnd.oci.image.manifest.v1+json") if d else Head(404)


def _stack(root: Path, image: str, *, inputs: str = "") -> InfraCheckout:
    p = root / "stacks/app/main.tf"
    p.parent.mkdir(parents=True)
    p.write_text(textwrap.dedent(f'''
        variable "image_tag" {{
          default = "latest"
        }}
        locals {{
          image = "{image}:${{var.image_tag}}"
        }}
        resource "kubernetes_deployment" "app" {{
          spec {{
            template {{
              spec {{
                init_container {{
                  image = local.image
                }}
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
    if inputs:  # the real stacks' shape: terragrunt passes the pinned tag (stacks/payslip-ingest/terragrunt.hcl)
        (p.parent / "terragrunt.hcl").write_text(textwrap.dedent(f'''
            include "root" {{
              path = find_in_parent_folders()
            }}

            inputs = {{
              image_tag = "{inputs}"
            }}
        '''))
    return InfraCheckout(root, old_hosts=[OLD], old_names=["registry-private"], new_host=NEW, owner="viktor")


@pytest.fixture(autouse=True)
def intact(monkeypatch):
    class R:
        broken = []
    monkeypatch.setattr(preflight.integrity, "check_image", lambda *a, **k: R())


def test_before_the_flip_the_pinned_tag_must_be_on_forgejo_with_the_same_digest(tmp_path):
    co = _stack(tmp_path, f"{OLD}/app", inputs="4f70681d")
    private = Registry({("app", "4f70681d"): "sha256:aa", ("app", "latest"): "sha256:cc"})
    # only :latest was copied (forgejo-migrate-orphan-images.sh): the pinned tag is missing
    with pytest.raises(GateFailed) as e:
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "latest"): "sha256:cc"}), private)
    seen = e.value.seen
    assert f"{NEW}/viktor/app:4f70681d is not on Forgejo: expected sha256:aa (registry-private serves it)" in seen
    # one line per reference, naming every line of the stack that pulls it
    assert seen.count("4f70681d") == 1 and "pulled after the flip at stacks/app/main.tf:13, :16" in seen, seen
    assert e.value.where == "stacks/app/main.tf:13, :16"
    with pytest.raises(GateFailed, match="expected registry-private's sha256:aa, Forgejo serves sha256:bb"):
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "4f70681d"): "sha256:bb"}), private)
    assert preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "4f70681d"): "sha256:aa"}),
                           private) == ["app:4f70681d sha256:aa"]


def test_an_already_flipped_stack_is_judged_as_written(tmp_path):
    co = _stack(tmp_path, f"{NEW}/viktor/app")
    private = Registry({("app", "latest"): "sha256:aa"})
    with pytest.raises(GateFailed) as e:
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "latest"): "sha256:bb"}), private)
    assert "app:latest: expected registry-private's sha256:aa, Forgejo serves sha256:bb" in e.value.seen
    assert "; pulled at stacks/app/main.tf:13, :16" in e.value.seen  # not "after the flip": it names Forgejo


def test_a_for_each_resource_pulls_from_one_line_named_once(tmp_path):
    """beads-server's shape: two CronJobs from one for_each map, one `image =` line (lab stack and real one)."""
    p = tmp_path / "stacks/app/main.tf"
    p.parent.mkdir(parents=True)
    p.write_text(textwrap.dedent(f'''
        locals {{
          jobs = {{ dispatcher = "*/5 * * * *", reaper = "0 * * * *" }}
        }}
        resource "kubernetes_cron_job_v1" "jobs" {{
          for_each = local.jobs
          spec {{
            container {{
              image = "{OLD}/app:2fd7670d"
            }}
          }}
        }}
    '''))
    co = InfraCheckout(tmp_path, old_hosts=[OLD], old_names=["registry-private"], new_host=NEW, owner="viktor")
    with pytest.raises(GateFailed) as e:
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({}), Registry({("app", "2fd7670d"): "sha256:aa"}))
    assert e.value.seen.endswith("pulled after the flip at stacks/app/main.tf:9") and e.value.where == "stacks/app/main.tf:9"


def test_after_the_flip_and_the_decommission_forgejo_is_judged_alone(tmp_path):
    co = _stack(tmp_path, f"{NEW}/viktor/app")
    assert preflight.check(co, "stacks/app/main.tf", ["app"], Registry({("viktor/app", "latest"): "sha256:aa"}),
                           Registry({})) == ["app:latest sha256:aa (not on registry-private: Forgejo alone)"]
    with pytest.raises(GateFailed, match="nor on registry-private"):
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry({}), Registry({}))


def test_a_copy_that_fails_the_integrity_check_is_red(tmp_path, monkeypatch):
    from phasegate.integrity import BrokenReference

    co = _stack(tmp_path, f"{OLD}/app")
    both = {("app", "latest"): "sha256:aa", ("viktor/app", "latest"): "sha256:aa"}

    class R:
        broken = [BrokenReference("viktor/app", "latest", "sha256:dd", "layer", 404, ("sha256:aa",))]
    monkeypatch.setattr(preflight.integrity, "check_image", lambda *a, **k: R())
    with pytest.raises(GateFailed, match=f"{NEW}/viktor/app:latest \\(sha256:aa\\) on Forgejo is broken: .*sha256:dd"):
        preflight.check(co, "stacks/app/main.tf", ["app"], Registry(both), Registry(both))


def test_a_missing_stack_file_is_broken_and_every_stack_is_listed(tmp_path):
    co = _stack(tmp_path, f"{OLD}/app")
    with pytest.raises(Broken, match="stack file"):
        preflight.check(co, "stacks/gone/main.tf", ["gone"], Registry({}), Registry({}))
    specs = [config.InfraStack(project="app", path="stacks/app/main.tf", images=["app"]),
             config.InfraStack(project="gone", path="stacks/gone/main.tf", images=["gone"])]
    private = Registry({("app", "latest"): "sha256:aa"})
    with pytest.raises(GateFailed) as e:
        preflight.gate_every_stack(co, specs, Registry({}), private)
    assert "app: forgejo.example.test/viktor/app:latest is not on Forgejo" in e.value.seen
    assert "gone: could not judge: stacks/gone/main.tf (stack file)" in e.value.seen
    with pytest.raises(Broken, match="gone: could not judge"):  # nothing red, one stack unjudged: never green
        preflight.gate_every_stack(co, specs, Registry({("viktor/app", "latest"): "sha256:aa"}), private)

    class Hangs:
        def head_manifest(self, repository, reference):
            raise TimedOut(f"HEAD {repository}:{reference}: no answer within the timeout")
    with pytest.raises(TimedOut, match="app: could not judge: HEAD viktor/app:latest"):  # the kind survives
        preflight.gate_every_stack(co, specs[:1], Hangs(), private)


# -- the real repository: the flip the migration made, against what its script had copied ----------------

MIRROR = Path("/work/.mirror/ViktorBarzin+infra/repo")
# scripts/forgejo-migrate-orphan-images.sh:39-48 @c2f8a300: what was copied to Forgejo (`:latest`, novnc `:v4`);
# :33-38: fire-planner and wealthfolio-sync had 0 tags on registry-private
COPIED = ["chrome-service-novnc:v4", "chrome-service-novnc:latest", "payslip-ingest:latest", "job-hunter:latest",
          "claude-agent-service:latest", "freedify:latest", "beadboard:latest", "infra-ci:latest"]
ON_PRIVATE = COPIED + ["payslip-ingest:4f70681d", "job-hunter:92afc38d", "claude-agent-service:2fd7670d",
                       "beadboard:17a38e43"]


def _real_stacks(tmp_path: Path, commit: str) -> InfraCheckout:
    if not (MIRROR / "HEAD").exists():
        pytest.fail(f"the infra mirror {MIRROR} is needed to read the real stacks")
    inv = config.load()
    tar = subprocess.run(["git", "-C", str(MIRROR), "archive", commit, *{str(Path(s.path).parent) for s in inv.infra_repo.stacks}],
                         capture_output=True, check=True, timeout=60)
    subprocess.run(["tar", "-x", "-C", str(tmp_path)], input=tar.stdout, check=True, timeout=60)
    pr = inv.private_registry
    return InfraCheckout(tmp_path, old_hosts=[pr.host, *pr.aliases], old_names=[pr.container],
                         new_host=inv.forgejo.host, owner=inv.forgejo.owner)


def _digest(ref: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


@pytest.mark.parametrize("commit", ["5d22b449", "3148d15d"])  # before the flip; the flip (Phases 3+4+5)
def test_the_real_stacks_against_what_the_migration_script_copied(tmp_path, commit):
    co = _real_stacks(tmp_path, commit)
    inv = config.load()
    private = Registry({tuple(r.split(":")): _digest(r) for r in ON_PRIVATE})
    forgejo = Registry({(f"viktor/{r.split(':')[0]}", r.split(":")[1]): _digest(r) for r in COPIED})
    with pytest.raises(GateFailed) as e:
        preflight.gate_every_stack(co, inv.infra_repo.stacks, forgejo, private)
    seen, fj = e.value.seen, inv.forgejo.host
    missing = {  # project -> references the flipped stack pulls that Forgejo lacked (registry-private has them)
        "payslip-ingest": "payslip-ingest:4f70681d",  # terragrunt.hcl:23 input, over main.tf's default "latest"
        "job-hunter": "job-hunter:92afc38d",  # terragrunt.hcl:25
        "claude-agent-service": "claude-agent-service:2fd7670d",  # main.tf:14 local.image_tag
        "beads-server": "beadboard:17a38e43",  # main.tf:8 variable default
    }
    for project, ref in missing.items():
        assert f"{project}: {fj}/viktor/{ref} is not on Forgejo: expected {_digest(ref)}" in seen, seen
    assert f"beads-server: {fj}/viktor/claude-agent-service:2fd7670d is not on Forgejo" in seen
    # the two the script excluded (0 tags on registry-private) are on neither registry
    for ref in ("fire-planner:latest", "wealthfolio-sync:latest"):
        assert f"{fj}/viktor/{ref} is not on Forgejo (nor on registry-private)" in seen, seen
    assert seen.startswith("7 reference(s) not ready"), seen
    # the script copied novnc's :v4 and freedify's :latest: those two stacks were ready
    assert "chrome-service: chrome-service-novnc:v4" in e.value.evidence
    assert "freedify: freedify:latest" in e.value.evidence
    line = {"5d22b449": "stacks/claude-agent-service/main.tf:304, :364, :394",
            "3148d15d": "stacks/claude-agent-service/main.tf:305, :365, :395"}[commit]
    assert line in seen and line in e.value.where, (seen, e.value.where)
