"""Lab component `infra_checkout`: a generated copy of the infra repository's files.

The files mirror the shapes of the real repository (Terraform `locals` with
`image = "<registry>/<name>:${var.image_tag}"` used as `local.image`, images
inside `for_each` maps and `dynamic` blocks and nested CronJob templates,
Woodpecker YAML, the cloud-init heredoc that writes containerd `hosts.toml`,
the dockerconfigjson Secret built with `jsonencode`, the monitoring CronJobs,
runbooks and architecture docs). Nothing is copied from that repository: the
text is written for the lab, with the lab's registry hosts.

The files are templates (templates/, rendered by render.py with the lab's hosts); this module holds the
component and the breakages (faults) that re-render the checkout with one spot left broken.

Stages: `before` (nothing cut over), `cutover` (Phase 3 done: the default
lab state), `decommissioned` (Phases 4 and 5 done: the main job's state for
phase4/phase5).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from phasegate.lab.faults import fault, state_part
from phasegate.lab.infra_checkout.render import STAGES, files

__all__ = ["STAGES", "InfraCheckoutComponent", "files"]


class InfraCheckoutComponent:
    name = "infra_checkout"

    def __init__(self):
        self.stage = "cutover"
        self.breaks: set[str] = set()
        self.root: Path | None = None  # the monorepo; the infra checkout is root/infra
        self.hosts: dict[str, str] = {}
        self._lab = None

    @property
    def infra(self) -> Path:
        return self.root / "infra"

    def start(self, lab) -> None:
        inv = lab.inventory_dict()  # components started before this one are merged in
        pr, fj = inv["private_registry"], inv["forgejo"]
        aliases = list(pr.get("aliases") or [])
        self.hosts = {
            "old": pr["host"],
            "old_alias": aliases[0] if aliases else pr["host"],
            "new": fj["host"],
            "owner": fj["owner"],
            "container": pr.get("container", "registry-private"),
            # the mirror containerd is pointed at (INF:89-90 @5d22b449: the in-cluster Traefik LB)
            "mirror": ((inv.get("cluster") or {}).get("forgejo_mirrors") or ["https://10.0.20.200"])[0],
        }
        self.root = lab.dir / "monorepo"
        self._lab = lab
        self.render()

    def stop(self) -> None:
        pass

    def _follow_mirror(self) -> None:
        """The cluster component starts after this one and brings the in-cluster mirror (its Traefik
        front): once it is up, the checkout names that mirror, as the real one names 10.0.20.200."""
        cluster = self._lab["cluster"] if self._lab is not None and "cluster" in self._lab else None
        traefik = getattr(cluster, "traefik", None)
        try:
            url = traefik.url if traefik is not None else ""
        except Exception:  # not listening yet
            url = ""
        if url and url != self.hosts.get("mirror"):
            self.hosts["mirror"] = url
            self.render()

    def inventory(self) -> dict:
        if self.root is None:  # asked while starting (the inventory of the components before)
            return {}
        self._follow_mirror()
        return {"infra_repo": {
            "path": str(self.infra),
            "claude_memory_install_url": f"https://{self.hosts['new']}/{self.hosts['owner']}/claude-memory-mcp.git",
        }}

    def env(self) -> dict:
        return {}

    def render(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        for rel, text in files(self.stage, self.breaks, self.hosts).items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def with_change(self, *, stage: str | None = None, add: str | None = None):
        """Generator body for faults/states: change, yield, restore."""
        prev_stage, prev_breaks = self.stage, set(self.breaks)
        if stage:
            self.stage = stage
        if add:
            self.breaks.add(add)
        self.render()
        try:
            yield
        finally:
            self.stage, self.breaks = prev_stage, prev_breaks
            self.render()


# --------------------------------------------------------------------------
# Faults and state parts
# --------------------------------------------------------------------------


@state_part("decommissioned", component="infra_checkout",
            description="infra checkout after Phases 4 and 5: cloud-init, credentials, probe and docs updated")
def _decommissioned(lab):
    yield from lab["infra_checkout"].with_change(stage="decommissioned")


def _break(name: str, description: str, *, stage: str | None = None):
    def gen(lab):
        yield from lab["infra_checkout"].with_change(stage=stage, add=None if stage else name)

    gen.__name__ = name.replace("-", "_")
    fault(name, component="infra_checkout", description=description)(gen)


_break("infra-checkout-before-cutover", "the whole checkout as before Phase 3: every image still on registry-private", stage="before")
_break("infra-checkout-before-decommission", "cloud-init, credentials, probe and docs as before Phase 4/5", stage="cutover")
_break("stack-local-image-on-registry-private", "payslip-ingest's locals still build image from registry-private (used as local.image)")
_break("stack-for-each-image-on-registry-private", "chrome-service's sidecar map (a dynamic for_each) still names registry-private for novnc")
_break("stack-nested-image-on-registry-private", "wealthfolio's sync CronJob (nested job template) still pulls from registry-private")
_break("stack-image-moved-elsewhere", "job-hunter's image now points at a public registry instead of Forgejo")
_break("infra-ci-pipeline-on-registry-private", "drift-detection.yml still runs the infra-ci image from registry-private")
_break("claude-md-old-install-url", "the monorepo CLAUDE.md still installs claude-memory-mcp from GitHub")
_break("cloud-init-writes-old-hosts-toml", "the cloud-init template still writes hosts.toml for registry-private's alias")
_break("registry-credentials-old-auths", "registry-credentials Terraform still carries the registry-private auths entries")
_break("old-integrity-probe-present", "the monitoring stack still defines registry-integrity-probe")
_break("doc-describes-registry-private", "registry-vm.md still says the VM hosts registry-private")
_break("doc-missing", "forgejo-registry-breakglass.md does not exist")
_break("docs-name-registry-private-as-current", "every Phase 5 document gains a present-tense line about registry-private")
_break("claude-md-not-beside-checkout", "the runner has only the infra repository: the monorepo's root CLAUDE.md is not beside it")
_break("monitoring-module-missing", "the monitoring module directory is not in the checkout (moved, or a partial checkout)")
_break("docs-service-catalog-stale-runbooks", "service-catalog.md as at 8c73a024: the VM is 'Private Docker registry VM', the rebuild row links the replaced runbook")
_break("docs-ci-cd-old-probe-live", "ci-cd.md's Image Registry Flow still presents registry-integrity-probe as live (as at 8c73a024)")
_break("docs-new-runbook-empty", "forgejo-registry-rebuild-image.md exists but is empty")
_break("docs-current-mention-excused-by-was", "monitoring.md says the probe 'was moved to' registry-private's host: current, though it says 'was'")
_break("forgejo-pvc-cap-20gi", "the Forgejo PVC's autoresize cap is still 20Gi (the value before Phase 0)")
_break("probe-cronjob-hourly", "forgejo-integrity-probe runs hourly instead of every 15 minutes")
_break("cloud-init-forgejo-mirror-stale", "cloud-init still points Forgejo's hosts.toml at 10.0.20.200 after the Traefik LB moved")
_break("mirror-script-without-mirror-host", "the mirror script writes a hosts.toml with a server but no mirror host")
_break("compose-template-starts-registry-private", "the VM's compose template (cloud-init) still defines registry-private")
_break("replaced-doc-without-banner", "registry-rebuild-image.md stays as a current runbook, no superseded banner")
