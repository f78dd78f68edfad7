"""The infra checkout's files, rendered from templates (templates/, real files with `{{ name }}` placeholders).

- `templates/checkout/`: every file of the checkout in every stage, at its path in the monorepo;
- `templates/before-decommission/` and `templates/decommissioned/`: the documents that Phase 5 rewrites,
  as they are while registry-private runs and after Phases 4 and 5;
- `templates/parts/`: blocks this module assembles (registry-private's hosts.toml entries in the
  cloud-init template, its auths entry, its compose service, a probe CronJob, the mirror's host entry).

Placeholders are `{{ name }}` (string.Template with that delimiter), so the files' own `${...}`
(Terraform, shell) and `{...}` (HCL) stay as written. The values: the lab's hosts (`private_host`,
`private_alias`, `private_container`, `forgejo_host`, `owner`, `mirror`), `registry.<spot>` (the
registry an image of that spot resolves to: Forgejo after the cutover, registry-private before it or
when a fault leaves the spot behind), and per-file values below. The stage and the faults in `breaks`
choose the values, variants and parts; the faults themselves are named in the package (__init__.py).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import cache
from pathlib import Path

STAGES = ("before", "cutover", "decommissioned")
TEMPLATES = Path(__file__).resolve().parent / "templates"

# the spots a fault leaves on registry-private after the cutover
BROKEN_SPOTS = {
    "stack-local-image-on-registry-private": {"payslip-ingest"},
    "stack-for-each-image-on-registry-private": {"chrome-novnc"},
    "stack-nested-image-on-registry-private": {"wealthfolio-sync"},
    "infra-ci-pipeline-on-registry-private": {"infra-ci-drift"},
}
ALIAS_SPOTS = {"beadboard"}  # spots that name registry-private by its alias (the IP:port), not its host
DOCS = ["infra/docs/runbooks/registry-vm.md", "infra/docs/runbooks/registry-rebuild-image.md",
        "infra/docs/runbooks/forgejo-registry-rebuild-image.md", "infra/docs/runbooks/forgejo-registry-breakglass.md",
        "infra/docs/architecture/ci-cd.md", "infra/docs/architecture/monitoring.md", "infra/.claude/CLAUDE.md",
        "infra/.claude/reference/service-catalog.md"]


class FileTemplate(string.Template):
    """`{{ name }}` placeholders; any other `{{` in a template is an error."""

    delimiter = "{{"
    pattern = r"""
    \{\{(?:
      (?P<escaped>(?!))
    | (?P<named>(?!))
    | [ ](?P<braced>[a-z][a-z0-9_.-]*)[ ]\}\}
    | (?P<invalid>)
    )"""


@cache
def template(rel: str) -> FileTemplate:
    return FileTemplate((TEMPLATES / rel).read_text())


class _Values(Mapping):
    """The values of one rendering: fixed ones, `registry.<spot>` computed on demand."""

    def __init__(self, fixed: dict[str, str], registry):
        self._fixed, self._registry = fixed, registry

    def __getitem__(self, key: str) -> str:
        if key.startswith("registry."):
            return self._registry(key.removeprefix("registry."))
        return self._fixed[key]

    def __iter__(self):
        return iter(self._fixed)

    def __len__(self) -> int:
        return len(self._fixed)


def files(stage: str, breaks: set[str], h: dict[str, str]) -> dict[str, str]:
    """The checkout's files (path in the monorepo -> text) in `stage` with the faults `breaks`; `h` the
    lab's hosts (old, old_alias, new, owner, container, mirror)."""
    if stage not in STAGES:
        raise ValueError(stage)
    cut = stage != "before"
    decom = stage == "decommissioned"
    new_prefix = f"{h['new']}/{h['owner']}"
    behind = set().union(*(BROKEN_SPOTS.get(b, set()) for b in breaks))

    def registry(spot: str) -> str:
        if spot == "job-hunter" and "stack-image-moved-elsewhere" in breaks:
            return "ghcr.io/example"
        if not cut or spot in behind:
            return h["old_alias"] if spot in ALIAS_SPOTS else h["old"]
        return new_prefix

    base = {"private_host": h["old"], "private_alias": h["old_alias"], "private_container": h["container"],
            "forgejo_host": h["new"], "owner": h["owner"], "mirror": h.get("mirror", "https://10.0.20.200")}

    def render(rel: str, /, **extra: str) -> str:
        return template(rel).substitute(_Values({**base, **extra}, registry))

    def part(name: str, /, **extra: str) -> str:
        return render(f"parts/{name}", **extra)

    def checkout(rel: str, /, **extra: str) -> str:
        return render(f"checkout/{rel}", **extra)

    out = {rel: checkout(rel) for rel in [
        "infra/stacks/payslip-ingest/main.tf", "infra/stacks/job-hunter/main.tf",
        "infra/stacks/claude-agent-service/main.tf", "infra/stacks/fire-planner/main.tf",
        "infra/stacks/wealthfolio/main.tf", "infra/stacks/freedify/factory/main.tf", "infra/stacks/freedify/main.tf",
        "infra/stacks/chrome-service/main.tf", "infra/stacks/beads-server/main.tf",
        "infra/.woodpecker/default.yml", "infra/.woodpecker/drift-detection.yml"]}
    cli_registry = h["new"] if cut else h["old_alias"]
    out["infra/.woodpecker/build-cli.yml"] = checkout(
        "infra/.woodpecker/build-cli.yml", cli_repo=f"{new_prefix}/infra" if cut else f"{h['old_alias']}/infra",
        cli_registry=cli_registry, cli_user_secret="forgejo_user" if cut else "registry_user",
        cli_password_secret="forgejo_push_token" if cut else "registry_password")
    out["infra/.woodpecker/build-ci-image.yml"] = checkout("infra/.woodpecker/build-ci-image.yml")
    # the retention CronJob's script (its ConfigMap is file() of it); run by phasegate.lab.forgejo.cleanup
    out["infra/stacks/forgejo/files/cleanup.sh"] = checkout("infra/stacks/forgejo/files/cleanup.sh")
    new_install = cut and "claude-md-old-install-url" not in breaks
    out["CLAUDE.md"] = checkout("CLAUDE.md", claude_memory_url=f"https://{new_prefix}/claude-memory-mcp.git"
                                if new_install else "github:ViktorBarzin/claude-memory-mcp")
    # cloud-init: registry-private's hosts.toml entries until Phase 4; the Traefik LB moved (10.0.20.200 ->
    # .203 on 05-30, msg@a382683c) and a stale cloud-init still names the old address
    hosts = (part("cloud-init-private-alias.sh") if not decom or "cloud-init-writes-old-hosts-toml" in breaks else "") + \
        (part("cloud-init-private-host.sh") if not decom else part("cloud-init-private-removed.sh"))
    stale = "cloud-init-forgejo-mirror-stale" in breaks
    out["infra/stacks/infra/main.tf"] = checkout("infra/stacks/infra/main.tf", registry_private_hosts=hosts,
                                                 **({"mirror": "https://10.0.20.200"} if stale else {}))
    # the Forgejo PVC as stacks/forgejo/main.tf:27-45 @5d22b449 declares it (pvc-autoresizer annotations)
    out["infra/stacks/forgejo/main.tf"] = checkout(
        "infra/stacks/forgejo/main.tf", storage_limit="20Gi" if "forgejo-pvc-cap-20gi" in breaks else "50Gi")
    # scripts/setup-forgejo-containerd-mirror.sh:19-26 @5d22b449: the hosts.toml it writes on every node
    out["infra/scripts/setup-forgejo-containerd-mirror.sh"] = checkout(
        "infra/scripts/setup-forgejo-containerd-mirror.sh",
        mirror_host="" if "mirror-script-without-mirror-host" in breaks else part("mirror-host.toml"))
    # modules/docker-registry/docker-compose.yml (DC:10-166 @5d22b449; 92-111 commented out @8c73a024)
    private = not decom or "compose-template-starts-registry-private" in breaks
    service = part("compose-registry-private.yml" if private else "compose-registry-private-decommissioned.yml")
    out["infra/modules/docker-registry/docker-compose.yml"] = checkout(
        "infra/modules/docker-registry/docker-compose.yml", registry_private=service.removesuffix("\n"))
    old_auths = not decom or "registry-credentials-old-auths" in breaks
    auths = "".join(part("registry-credentials-auth.tf", host=host)
                    for host in dict.fromkeys([h["old"], h["old_alias"]])) if old_auths else ""
    out["infra/stacks/kyverno/modules/kyverno/registry-credentials.tf"] = checkout(
        "infra/stacks/kyverno/modules/kyverno/registry-credentials.tf", registry_private_auths=auths)
    probes = []
    if not decom or "old-integrity-probe-present" in breaks:
        probes.append(part("probe-cronjob.tf", resource="registry_integrity_probe", name="registry-integrity-probe",
                           target=h["old_alias"], schedule="*/15 * * * *"))
    probes.append(part("probe-cronjob.tf", resource="forgejo_integrity_probe", name="forgejo-integrity-probe",
                       target=h["new"], schedule="0 * * * *" if "probe-cronjob-hourly" in breaks else "*/15 * * * *"))
    out["infra/stacks/monitoring/modules/monitoring/main.tf"] = checkout(
        "infra/stacks/monitoring/modules/monitoring/main.tf", probes="\n".join(probes).removesuffix("\n"))
    out.update(_docs(render, h, new=decom, breaks=breaks if decom else set()))
    if "docs-name-registry-private-as-current" in breaks:
        for rel in [r for r in out if r.endswith(".md")]:
            out[rel] += f"\nPrivate images are pushed to `{h['old']}` with the htpasswd user.\n"
    if "doc-missing" in breaks:
        out.pop("infra/docs/runbooks/forgejo-registry-breakglass.md", None)
    if "claude-md-not-beside-checkout" in breaks:
        out.pop("CLAUDE.md", None)
    if "monitoring-module-missing" in breaks:
        out.pop("infra/stacks/monitoring/modules/monitoring/main.tf", None)
    return out


def _docs(render, h: dict[str, str], *, new: bool, breaks: set[str]) -> dict[str, str]:
    """The documents Phase 5 rewrites: after Phases 4 and 5 (`new`) or as before, a fault keeping one as it was.
    The new runbooks have the shapes of the real ones at 8c73a024 (docs/runbooks/forgejo-registry-rebuild-image.md
    :1-128, forgejo-registry-breakglass.md:1-52: symptoms, a history line citing a post-mortem, numbered steps);
    ci-cd.md the shape of docs/architecture/ci-cd.md:29-36,100-106 @8c73a024 (Components table, Image Registry
    Flow); the runbook rows of .claude/reference/service-catalog.md:149-150 @8c73a024."""
    kept_as_was = {"infra/docs/runbooks/registry-vm.md": "doc-describes-registry-private",
                   "infra/docs/runbooks/registry-rebuild-image.md": "replaced-doc-without-banner"}
    # the probe ci-cd.md presents as live (the fault: the old one, as at 8c73a024)
    probe = h.get("old_probe", "registry-integrity-probe") if "docs-ci-cd-old-probe-live" in breaks \
        else "forgejo-integrity-probe"
    # the service catalog's runbook rows (the fault keeps them as they were)
    stale = "docs-service-catalog-stale-runbooks" in breaks or not new
    rebuild = "registry-rebuild-image.md" if stale else "forgejo-registry-rebuild-image.md"
    d = {}
    for rel in DOCS:
        if rel == "infra/docs/runbooks/forgejo-registry-rebuild-image.md":
            d[rel] = "" if "docs-new-runbook-empty" in breaks else render(f"checkout/{rel}")
        elif rel == "infra/.claude/reference/service-catalog.md":
            d[rel] = render(f"checkout/{rel}", rebuild=rebuild, vm_row="Private Docker registry VM (10.0.20.10)"
                            if stale else "Registry VM: pull-through caches (10.0.20.10)")
        else:
            variant = "decommissioned" if new and kept_as_was.get(rel, "") not in breaks else "before-decommission"
            d[rel] = render(f"{variant}/{rel}", probe=probe)
    if "docs-current-mention-excused-by-was" in breaks:
        d["infra/docs/architecture/monitoring.md"] += (
            f"\nThe probe was moved to `{h['old_alias']}` and runs there every 15 minutes.\n")
    return d
