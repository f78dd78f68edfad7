"""Lab component `infra_checkout`: a generated copy of the infra repository's files.

The files mirror the shapes of the real repository (Terraform `locals` with
`image = "<registry>/<name>:${var.image_tag}"` used as `local.image`, images
inside `for_each` maps and `dynamic` blocks and nested CronJob templates,
Woodpecker YAML, the cloud-init heredoc that writes containerd `hosts.toml`,
the dockerconfigjson Secret built with `jsonencode`, the monitoring CronJobs,
runbooks and architecture docs). Nothing is copied from that repository: the
text here is written for the lab, with the lab's registry hosts.

Stages: `before` (nothing cut over), `cutover` (Phase 3 done: the default
lab state), `decommissioned` (Phases 4 and 5 done: the main job's state for
phase4/phase5). Faults re-render the checkout with one spot left broken.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from phasegate.lab.faults import fault, state_part

STAGES = ("before", "cutover", "decommissioned")


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


# --------------------------------------------------------------------------
# File contents
# --------------------------------------------------------------------------


def files(stage: str, breaks: set[str], h: dict[str, str]) -> dict[str, str]:
    if stage not in STAGES:
        raise ValueError(stage)
    cut = stage != "before"
    decom = stage == "decommissioned"
    new_prefix = f"{h['new']}/{h['owner']}"

    def img(spot: str, name: str, alias: bool = False) -> str:
        old = h["old_alias"] if alias else h["old"]
        if spot == "job-hunter" and "stack-image-moved-elsewhere" in breaks:
            return f"ghcr.io/example/{name}"
        if not cut or spot in _BROKEN_SPOTS.intersection_for(breaks):
            return f"{old}/{name}"
        return f"{new_prefix}/{name}"

    out = {
        "infra/stacks/payslip-ingest/main.tf": _payslip(img),
        "infra/stacks/job-hunter/main.tf": _job_hunter(img),
        "infra/stacks/claude-agent-service/main.tf": _claude_agent(img),
        "infra/stacks/fire-planner/main.tf": _fire_planner(img),
        "infra/stacks/wealthfolio/main.tf": _wealthfolio(img),
        "infra/stacks/freedify/factory/main.tf": _freedify(img),
        "infra/stacks/freedify/main.tf": _freedify_root(),
        "infra/stacks/chrome-service/main.tf": _chrome(img),
        "infra/stacks/beads-server/main.tf": _beads(img),
        "infra/.woodpecker/default.yml": _wp_default(img("infra-ci", "infra-ci")),
        "infra/.woodpecker/drift-detection.yml": _wp_drift(img("infra-ci-drift", "infra-ci")),
        "infra/.woodpecker/build-cli.yml": _wp_build_cli(img("infra-ci", "infra-ci"), h, cut),
        "infra/.woodpecker/build-ci-image.yml": _wp_build_ci(h, new_prefix),
        # the retention CronJob's script (its ConfigMap is file() of it); run by phasegate.lab.forgejo.cleanup
        "infra/stacks/forgejo/files/cleanup.sh": _forgejo_cleanup_sh(),
        "CLAUDE.md": _monorepo_claude(cut and "claude-md-old-install-url" not in breaks, h),
        "infra/stacks/infra/main.tf": _cloud_init(h, old_entries=not decom, alias_entry=not decom or "cloud-init-writes-old-hosts-toml" in breaks,
                                                  stale_mirror="cloud-init-forgejo-mirror-stale" in breaks),
        "infra/stacks/forgejo/main.tf": _forgejo_stack("20Gi" if "forgejo-pvc-cap-20gi" in breaks else "50Gi"),
        "infra/scripts/setup-forgejo-containerd-mirror.sh": _mirror_script(h, with_host="mirror-script-without-mirror-host" not in breaks),
        "infra/modules/docker-registry/docker-compose.yml": _compose_template(
            h, private=not decom or "compose-template-starts-registry-private" in breaks),
        "infra/stacks/kyverno/modules/kyverno/registry-credentials.tf": _credentials(h, old=not decom or "registry-credentials-old-auths" in breaks),
        "infra/stacks/monitoring/modules/monitoring/main.tf": _monitoring(
            {**h, "probe_schedule": "0 * * * *" if "probe-cronjob-hourly" in breaks else "*/15 * * * *"},
            old_probe=not decom or "old-integrity-probe-present" in breaks),
    }
    docs_new = decom
    out.update(_docs(h, new=docs_new, breaks=breaks if decom else set()))
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


class _Spots:
    MAP = {
        "stack-local-image-on-registry-private": {"payslip-ingest"},
        "stack-for-each-image-on-registry-private": {"chrome-novnc"},
        "stack-nested-image-on-registry-private": {"wealthfolio-sync"},
        "infra-ci-pipeline-on-registry-private": {"infra-ci-drift"},
    }

    def intersection_for(self, breaks: set[str]) -> set[str]:
        out: set[str] = set()
        for b in breaks:
            out |= self.MAP.get(b, set())
        return out


_BROKEN_SPOTS = _Spots()


def _payslip(img) -> str:
    return f'''variable "image_tag" {{
  type        = string
  default     = "latest"
  description = "payslip-ingest image tag. CI passes the 8-hex commit SHA."
}}

variable "postgresql_host" {{ type = string }}

locals {{
  namespace = "payslip-ingest"
  image     = "{img("payslip-ingest", "payslip-ingest")}:${{var.image_tag}}"
  labels = {{
    app = "payslip-ingest"
  }}
}}

resource "kubernetes_namespace" "payslip_ingest" {{
  metadata {{
    name = local.namespace
  }}
}}

resource "kubernetes_deployment" "payslip_ingest" {{
  metadata {{
    name      = "payslip-ingest"
    namespace = kubernetes_namespace.payslip_ingest.metadata[0].name
    labels    = local.labels
  }}
  spec {{
    replicas = 1
    selector {{
      match_labels = local.labels
    }}
    template {{
      metadata {{
        labels = local.labels
      }}
      spec {{
        image_pull_secrets {{
          name = "registry-credentials"
        }}
        init_container {{
          name    = "migrate"
          image   = local.image
          command = ["alembic", "upgrade", "head"]
        }}
        container {{
          name  = "payslip-ingest"
          image = local.image
          port {{
            container_port = 8080
          }}
          env {{
            name  = "DB_HOST"
            value = var.postgresql_host
          }}
        }}
      }}
    }}
  }}
  lifecycle {{
    ignore_changes = [
      spec[0].template[0].spec[0].container[0].image, # KEEL_IGNORE_IMAGE
    ]
  }}
}}

resource "kubernetes_cron_job_v1" "payroll_sync" {{
  metadata {{
    name      = "payroll-sync"
    namespace = kubernetes_namespace.payslip_ingest.metadata[0].name
  }}
  spec {{
    schedule = "0 6 * * *"
    job_template {{
      metadata {{}}
      spec {{
        template {{
          metadata {{}}
          spec {{
            image_pull_secrets {{
              name = "registry-credentials"
            }}
            container {{
              name    = "sync"
              image   = local.image
              command = ["python", "-m", "payslip_ingest.sync"]
            }}
            restart_policy = "OnFailure"
          }}
        }}
      }}
    }}
  }}
}}
'''


def _job_hunter(img) -> str:
    return f'''variable "image_tag" {{
  type    = string
  default = "latest"
}}

locals {{
  namespace = "job-hunter"
  image     = "{img("job-hunter", "job-hunter")}:${{var.image_tag}}"
}}

resource "kubernetes_deployment" "job_hunter" {{
  metadata {{
    name      = "job-hunter"
    namespace = local.namespace
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        image_pull_secrets {{
          name = "registry-credentials"
        }}
        container {{
          name  = "job-hunter"
          image = local.image
        }}
      }}
    }}
  }}
}}
'''


def _claude_agent(img) -> str:
    return f'''locals {{
  namespace = "claude-agent"
  image     = "{img("claude-agent-service", "claude-agent-service")}"
  image_tag = "2fd7670d"
  labels = {{
    app = "claude-agent-service"
  }}
}}

resource "kubernetes_deployment" "claude_agent_service" {{
  metadata {{
    name      = "claude-agent-service"
    namespace = local.namespace
  }}
  spec {{
    template {{
      metadata {{
        labels = local.labels
      }}
      spec {{
        image_pull_secrets {{
          name = "registry-credentials"
        }}
        init_container {{
          name    = "seed"
          image   = "busybox:1.37"
          command = ["sh", "-c", "cp -r /seed/. /work/"]
        }}
        container {{
          name  = "agent"
          image = "${{local.image}}:${{local.image_tag}}"
        }}
        container {{
          name  = "vault-agent"
          image = "${{local.image}}:${{local.image_tag}}"
        }}
      }}
    }}
  }}
}}
'''


def _fire_planner(img) -> str:
    return f'''variable "image_tag" {{
  type    = string
  default = "latest"
}}

locals {{
  namespace = "fire-planner"
  image     = "{img("fire-planner", "fire-planner")}:${{var.image_tag}}"
  # One CronJob per job; every one runs the service image.
  jobs = {{
    recompute = {{ schedule = "0 2 * * *", args = ["recompute"] }}
    ingest    = {{ schedule = "30 2 * * *", args = ["ingest"] }}
  }}
}}

resource "kubernetes_deployment" "fire_planner" {{
  metadata {{
    name      = "fire-planner"
    namespace = local.namespace
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        container {{
          name  = "fire-planner"
          image = local.image
        }}
      }}
    }}
  }}
}}

resource "kubernetes_cron_job_v1" "jobs" {{
  for_each = local.jobs
  metadata {{
    name      = "fire-planner-${{each.key}}"
    namespace = local.namespace
  }}
  spec {{
    schedule = each.value.schedule
    job_template {{
      metadata {{}}
      spec {{
        template {{
          metadata {{}}
          spec {{
            container {{
              name  = each.key
              image = local.image
              args  = each.value.args
            }}
          }}
        }}
      }}
    }}
  }}
}}
'''


def _wealthfolio(img) -> str:
    return f'''variable "tls_secret_name" {{
  type      = string
  sensitive = true
}}

resource "kubernetes_deployment" "wealthfolio" {{
  metadata {{
    name      = "wealthfolio"
    namespace = "wealthfolio"
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        container {{
          name  = "wealthfolio"
          image = "afadil/wealthfolio:3.2"
        }}
        container {{
          name  = "backup"
          image = "alpine:3.20"
        }}
      }}
    }}
  }}
}}

resource "kubernetes_cron_job_v1" "wealthfolio_sync" {{
  metadata {{
    name      = "wealthfolio-sync"
    namespace = "wealthfolio"
  }}
  spec {{
    schedule = "0 */6 * * *"
    job_template {{
      metadata {{}}
      spec {{
        template {{
          metadata {{}}
          spec {{
            image_pull_secrets {{
              name = "registry-credentials"
            }}
            container {{
              name  = "sync"
              image = "{img("wealthfolio-sync", "wealthfolio-sync")}:latest"
            }}
          }}
        }}
      }}
    }}
  }}
}}
'''


def _freedify(img) -> str:
    return f'''variable "tls_secret_name" {{}}
variable "name" {{}}
variable "tag" {{
  default = "latest"
}}

resource "kubernetes_deployment" "freedify" {{
  metadata {{
    name      = var.name
    namespace = "freedify"
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        image_pull_secrets {{
          name = "registry-credentials"
        }}
        container {{
          image = "{img("freedify", "freedify")}:${{var.tag}}"
          name  = "freedify"
        }}
      }}
    }}
  }}
}}
'''


def _freedify_root() -> str:
    return '''module "freedify" {
  source          = "./factory"
  name            = "freedify"
  tls_secret_name = var.tls_secret_name
}
'''


def _chrome(img) -> str:
    return f'''variable "nfs_server" {{ type = string }}

locals {{
  image        = "mcr.microsoft.com/playwright:v1.48.0-noble"
  python_image = "mcr.microsoft.com/playwright/python:v1.48.0-noble"
  # Sidecars next to the browser: one container each (dynamic block below).
  sidecars = {{
    novnc = {{
      image = "{img("chrome-novnc", "chrome-service-novnc")}:v4"
      port  = 6080
    }}
    snapshot = {{
      image = local.python_image
      port  = 8090
    }}
  }}
}}

resource "kubernetes_deployment" "chrome_service" {{
  metadata {{
    name      = "chrome-service"
    namespace = "chrome-service"
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        image_pull_secrets {{
          name = "registry-credentials"
        }}
        container {{
          name  = "chrome"
          image = local.image
        }}
        dynamic "container" {{
          for_each = local.sidecars
          content {{
            name  = container.key
            image = container.value.image
            port {{
              container_port = container.value.port
            }}
          }}
        }}
      }}
    }}
  }}
}}
'''


def _beads(img) -> str:
    return f'''variable "beadboard_image_tag" {{
  type    = string
  default = "17a38e43"
}}

variable "claude_agent_service_image_tag" {{
  type    = string
  default = "2fd7670d"
}}

resource "kubernetes_deployment" "dolt" {{
  metadata {{
    name      = "dolt"
    namespace = "beads-server"
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        container {{
          name  = "dolt"
          image = "dolthub/dolt-sql-server:2.0.3"
        }}
      }}
    }}
  }}
}}

resource "kubernetes_deployment" "beadboard" {{
  metadata {{
    name      = "beadboard"
    namespace = "beads-server"
  }}
  spec {{
    template {{
      metadata {{}}
      spec {{
        image_pull_secrets {{
          name = "registry-credentials"
        }}
        container {{
          name  = "beadboard"
          image = "{img("beadboard", "beadboard", alias=True)}:${{var.beadboard_image_tag}}"
        }}
      }}
    }}
  }}
}}

locals {{
  claude_agent_service_image = "{img("beads-agent", "claude-agent-service")}:${{var.claude_agent_service_image_tag}}"
  beads_jobs = {{
    dispatcher = "*/5 * * * *"
    reaper     = "0 * * * *"
  }}
}}

resource "kubernetes_cron_job_v1" "beads" {{
  for_each = local.beads_jobs
  metadata {{
    name      = "beads-${{each.key}}"
    namespace = "beads-server"
  }}
  spec {{
    schedule = each.value
    job_template {{
      metadata {{}}
      spec {{
        template {{
          metadata {{}}
          spec {{
            container {{
              name  = each.key
              image = local.claude_agent_service_image
            }}
          }}
        }}
      }}
    }}
  }}
}}
'''


def _wp_default(image: str) -> str:
    return f'''# Unified infra CI pipeline: applies the stacks a push changed.
when:
  event: push
  branch: master

clone:
  git:
    image: woodpeckerci/plugin-git
    settings:
      depth: 2

steps:
  - name: apply
    image: {image}:latest
    pull: true
    environment:
      SLACK_WEBHOOK:
        from_secret: slack_webhook
    commands:
      - ./scripts/ci-apply-changed-stacks.sh

  - name: notify
    image: curlimages/curl
    commands:
      - curl -s -X POST "$SLACK_WEBHOOK" --data '{{"text":"apply done"}}' || true
'''


def _wp_drift(image: str) -> str:
    return f'''when:
  event: cron
  cron: drift-detection

clone:
  git:
    image: woodpeckerci/plugin-git

steps:
  - name: detect-drift
    image: {image}:latest
    pull: true
    commands:
      - ./scripts/drift-detect.sh
'''


def _wp_build_cli(image: str, h, cut: bool) -> str:
    return f'''when:
  event: push

steps:
  - name: test
    image: {image}:latest
    commands:
      - cd cli && go test ./...

  - name: build-image
    image: woodpeckerci/plugin-docker-buildx
    settings:
      repo:
        - {f"{h['new']}/{h['owner']}/infra" if cut else f"{h['old_alias']}/infra"}
      logins:
        - registry: {h['new'] if cut else h['old_alias']}
          username:
            from_secret: {"forgejo_user" if cut else "registry_user"}
          password:
            from_secret: {"forgejo_push_token" if cut else "registry_password"}
      dockerfile: cli/Dockerfile
      context: cli
      auto_tag: true
'''


def _wp_build_ci(h, new_prefix: str) -> str:
    return f'''# Build the CI tools image used by all infra pipelines (dual-push during the bake).
when:
  - event: push
    branch: master
    path:
      include:
        - 'ci/Dockerfile'
  - event: manual

steps:
  - name: build-and-push
    image: woodpeckerci/plugin-docker-buildx
    settings:
      repo:
        - {h['old_alias']}/infra-ci
        - {new_prefix}/infra-ci
      dockerfile: ci/Dockerfile
      context: ci/
      tags:
        - latest
        - "${{CI_COMMIT_SHA:0:8}}"
      logins:
        - registry: {h['old_alias']}
          username:
            from_secret: registry_user
          password:
            from_secret: registry_password
        - registry: {h['new']}
          username:
            from_secret: forgejo_user
          password:
            from_secret: forgejo_push_token

  - name: verify-integrity
    image: alpine:3.20
    commands:
      - apk add --no-cache curl jq
      - ./ci/verify-push.sh {new_prefix}/infra-ci "${{CI_COMMIT_SHA:0:8}}"
'''


def _monorepo_claude(new: bool, h) -> str:
    url = f"https://{h['new']}/{h['owner']}/claude-memory-mcp.git" if new else "github:ViktorBarzin/claude-memory-mcp"
    return f'''# Monorepo notes

## Tools

- **Memory**: install the memory MCP plugin with
  `claude plugins install {url}`.
- **Infra**: see `infra/.claude/CLAUDE.md` for the cluster rules.
'''


def _cloud_init(h, *, old_entries: bool, alias_entry: bool, stale_mirror: bool = False) -> str:
    old, alias = h["old"], h["old_alias"]
    # stale_mirror: the Traefik LB moved (10.0.20.200 -> .203 on 05-30, msg@a382683c) and cloud-init did not
    mirror = "https://10.0.20.200" if stale_mirror else h.get("mirror", "https://10.0.20.200")
    parts = []
    if alias_entry:
        parts.append(f'''  # IP-based entry: direct access, skip TLS verify
  mkdir -p /etc/containerd/certs.d/{alias}
  printf 'server = "https://{alias}"\\n\\n[host."https://{alias}"]\\n  capabilities = ["pull", "resolve", "push"]\\n  skip_verify = true\\n' > /etc/containerd/certs.d/{alias}/hosts.toml
''')
    if old_entries:
        parts.append(f'''  # Hostname-based entry: redirects to the LAN IP
  mkdir -p /etc/containerd/certs.d/{old}
  printf 'server = "https://{old}"\\n\\n[host."https://{alias}"]\\n  capabilities = ["pull", "resolve", "push"]\\n  skip_verify = true\\n' > /etc/containerd/certs.d/{old}/hosts.toml
''')
    removed = "" if old_entries else f"  # {old} / {alias} entries removed in Phase 4: registry-private is gone.\n"
    return f'''variable "proxmox_host" {{ type = string }}

locals {{
  k8s_cloud_init_snippet_name = "k8s_cloud_init.yaml"
}}

module "k8s-node-template" {{
  source          = "../../modules/create-template-vm"
  proxmox_host    = var.proxmox_host
  is_k8s_template = true
  snippet_name    = local.k8s_cloud_init_snippet_name
  containerd_config_update_command = <<-EOF
  sed -i 's|config_path = ""|config_path = "/etc/containerd/certs.d"|' /etc/containerd/config.toml

  mkdir -p /etc/containerd/certs.d/docker.io
  printf 'server = "https://registry-1.docker.io"\\n\\n[host."http://10.0.20.10:5000"]\\n  capabilities = ["pull", "resolve"]\\n' > /etc/containerd/certs.d/docker.io/hosts.toml

{"".join(parts)}{removed}  # Forgejo OCI registry: redirect to the in-cluster Traefik LB.
  mkdir -p /etc/containerd/certs.d/{h["new"]}
  printf 'server = "https://{h["new"]}"\\n\\n[host."{mirror}"]\\n  capabilities = ["pull", "resolve"]\\n' > /etc/containerd/certs.d/{h["new"]}/hosts.toml
  EOF
}}
'''


def _forgejo_stack(cap: str) -> str:
    """The Forgejo PVC as stacks/forgejo/main.tf:27-45 @5d22b449 declares it (pvc-autoresizer annotations)."""
    return f'''resource "kubernetes_namespace" "forgejo" {{
  metadata {{
    name = "forgejo"
  }}
}}

resource "kubernetes_persistent_volume_claim" "data_encrypted" {{
  wait_until_bound = false
  metadata {{
    name      = "forgejo-data-encrypted"
    namespace = kubernetes_namespace.forgejo.metadata[0].name
    annotations = {{
      "resize.topolvm.io/threshold"     = "80%"
      "resize.topolvm.io/increase"      = "50%"
      "resize.topolvm.io/storage_limit" = "{cap}"
    }}
  }}
  spec {{
    access_modes       = ["ReadWriteOnce"]
    storage_class_name = "proxmox-lvm-encrypted"
    resources {{
      requests = {{
        storage = "15Gi"
      }}
    }}
  }}
}}
'''


def _mirror_script(h, *, with_host: bool) -> str:
    """scripts/setup-forgejo-containerd-mirror.sh:19-26 @5d22b449: the hosts.toml it writes on every node."""
    host_block = f'''
[host."{h.get("mirror", "https://10.0.20.200")}"]
  capabilities = ["pull", "resolve"]''' if with_host else ""
    return f'''#!/usr/bin/env bash
# One-shot deployment of the {h["new"]} containerd hosts.toml entry across every k8s node.
set -euo pipefail

CERTS_DIR=/etc/containerd/certs.d/{h["new"]}
HOSTS_TOML='server = "https://{h["new"]}"
{host_block}
'

for n in $(kubectl get nodes -o name | sed 's|^node/||'); do
  kubectl drain "$n" --ignore-daemonsets --delete-emptydir-data --force --grace-period=60
  ssh "wizard@$n" sudo bash -c "mkdir -p $CERTS_DIR && printf '%s' '$HOSTS_TOML' > $CERTS_DIR/hosts.toml && systemctl restart containerd"
  kubectl uncordon "$n"
done
'''


def _compose_template(h, *, private: bool) -> str:
    """modules/docker-registry/docker-compose.yml (DC:10-166 @5d22b449; 92-111 commented out @8c73a024)."""
    svc = [f"  {h['container']}:", "    image: registry:2.8.3", f"    container_name: {h['container']}",
           "    volumes:", "      - /opt/registry/data/private:/var/lib/registry"]
    if not private:
        svc = ["  # registry-private decommissioned in Phase 4 of forgejo-registry-consolidation"] + ["#" + s[1:] for s in svc]
    lines = ["services:", "  dockerhub:", "    image: registry:2.8.3", "    container_name: registry-dockerhub",
             *svc, "  nginx:", "    image: nginx:1.27", "    container_name: registry-nginx"]
    return "\n".join(lines) + "\n"


def _credentials(h, *, old: bool) -> str:
    old_entries = ""
    if old:
        for host in dict.fromkeys([h["old"], h["old_alias"]]):
            old_entries += f'''        "{host}" = {{
          auth = base64encode("${{data.vault_kv_secret_v2.viktor.data["registry_user"]}}:${{data.vault_kv_secret_v2.viktor.data["registry_password"]}}")
        }}
'''
    return f'''# Private registry credentials, cloned into every namespace by Kyverno.
data "vault_kv_secret_v2" "viktor" {{
  mount = "secret"
  name  = "viktor"
}}

resource "kubernetes_secret" "registry_credentials" {{
  metadata {{
    name      = "registry-credentials"
    namespace = "kyverno"
  }}
  type = "kubernetes.io/dockerconfigjson"
  data = {{
    ".dockerconfigjson" = jsonencode({{
      auths = {{
{old_entries}        "{h["new"]}" = {{
          auth = base64encode("cluster-puller:${{try(data.vault_kv_secret_v2.viktor.data["forgejo_pull_token"], "")}}")
        }}
      }}
    }})
  }}
}}
'''


def _probe(resource: str, name: str, target: str, schedule: str = "*/15 * * * *") -> str:
    return f'''resource "kubernetes_cron_job_v1" "{resource}" {{
  metadata {{
    name      = "{name}"
    namespace = "monitoring"
  }}
  spec {{
    schedule                      = "{schedule}"
    successful_jobs_history_limit = 3
    failed_jobs_history_limit     = 3
    job_template {{
      metadata {{}}
      spec {{
        template {{
          metadata {{}}
          spec {{
            container {{
              name  = "{name}"
              image = "docker.io/library/alpine:3.20"
              env {{
                name  = "REGISTRY_URL"
                value = "https://{target}"
              }}
              env {{
                name  = "PUSHGATEWAY"
                value = "http://prometheus-prometheus-pushgateway.monitoring:9091/metrics/job/{name}"
              }}
            }}
          }}
        }}
      }}
    }}
  }}
}}
'''


def _monitoring(h, *, old_probe: bool) -> str:
    out = '''resource "kubernetes_namespace" "monitoring" {
  metadata {
    name = "monitoring"
  }
}

'''
    if old_probe:
        out += _probe("registry_integrity_probe", "registry-integrity-probe", h["old_alias"]) + "\n"
    out += _probe("forgejo_integrity_probe", "forgejo-integrity-probe", h["new"], h.get("probe_schedule", "*/15 * * * *"))
    return out


def _docs(h, *, new: bool, breaks: set[str]) -> dict[str, str]:
    old, alias, c, fj, owner = h["old"], h["old_alias"], h["container"], h["new"], h["owner"]
    d = {}
    if new and "doc-describes-registry-private" not in breaks:
        d["infra/docs/runbooks/registry-vm.md"] = f'''# Runbook: Registry VM (10.0.20.10)

Last updated: 2026-05-07

The registry VM hosts the pull-through caches only:

| Port | Upstream |
|---|---|
| 5000 | docker.io |
| 5010 | ghcr.io |

Private images live in Forgejo at `{fj}/{owner}/<image>`. Break-glass
tarballs of `infra-ci` are written to `/opt/registry/data/private/_breakglass/`
(see `docs/runbooks/forgejo-registry-breakglass.md`).

## History

Until Phase 4 this VM also ran `{c}` at `{alias}`.
'''
    else:
        d["infra/docs/runbooks/registry-vm.md"] = f'''# Runbook: Registry VM (10.0.20.10)

Last updated: 2026-04-19

The registry VM hosts `{old}` (private Docker registry, htpasswd auth,
NGINX in front of `{c}`) and the pull-through caches.

## Restarting the registry

```
docker compose -f /opt/registry/docker-compose.yml restart {c}
```
'''
    if new and "replaced-doc-without-banner" not in breaks:
        d["infra/docs/runbooks/registry-rebuild-image.md"] = f'''# Runbook: rebuild an image in the private registry

> **Superseded**: registry-private was decommissioned in Phase 4. Replaced by
> `forgejo-registry-rebuild-image.md`.

## Old procedure

Pipelines pulling from `{alias}` failed with a missing manifest.
'''
    else:
        d["infra/docs/runbooks/registry-rebuild-image.md"] = f'''# Runbook: rebuild an image in the private registry

Pipelines that pull from `{alias}` are failing with a missing manifest.

## Rebuild

```
REG={alias}
docker push $REG/infra-ci:latest
```
'''
    # the shapes of the real runbooks at 8c73a024 (docs/runbooks/forgejo-registry-rebuild-image.md:1-128,
    # forgejo-registry-breakglass.md:1-52): symptoms, a history line citing a post-mortem, numbered steps
    d["infra/docs/runbooks/forgejo-registry-rebuild-image.md"] = "" if "docs-new-runbook-empty" in breaks else f'''# Runbook: Rebuild an Image on the Forgejo OCI Registry

## When to use this

- `forgejo-integrity-probe` CronJob in `monitoring` reports
  `registry_manifest_integrity_failures > 0` for `instance="{fj}"`

This is the Forgejo equivalent of the {c} orphan-index
failure mode (`docs/post-mortems/2026-04-19-registry-orphan-index.md`).

## Phase 1 — Confirm the diagnosis

```sh
curl -sI -u "$USER:$TOKEN" https://{fj}/v2/{owner}/<image>/manifests/<tag>
```

## Phase 2 — Rebuild and re-push

1. Open the repository's manual pipeline in Woodpecker.
2. Run the pipeline with `branch=master`.
3. Confirm the new version under `{fj}/{owner}/<image>` in the Forgejo UI.
'''
    if new:
        d["infra/docs/runbooks/forgejo-registry-breakglass.md"] = f'''# Runbook: Forgejo registry break-glass: recovering infra-ci

## When to use this runbook

1. Forgejo (`{fj}`) is unreachable.
2. `{c}` is also gone (post-Phase 4 of the consolidation).

## Recovery procedure

1. Copy `/opt/registry/data/private/_breakglass/infra-ci-latest.tar.gz` to a node.
2. Load it into containerd:

```bash
ctr -n k8s.io images import infra-ci-latest.tar.gz
```

3. Re-run the pipeline.
'''
        # the shape of docs/architecture/ci-cd.md:29-36,100-106 @8c73a024 (Components table, Image Registry Flow)
        probe = h.get("old_probe", "registry-integrity-probe") if "docs-ci-cd-old-probe-live" in breaks else "forgejo-integrity-probe"
        d["infra/docs/architecture/ci-cd.md"] = f'''# CI/CD architecture

## Components

| Component | Type | Location | Purpose |
|---|---|---|---|
| Private Registry | Forgejo Packages | `{fj}/{owner}` | Private images; migrated from {old} 2026-05-07 |

### Image Registry Flow

1. **Kyverno ClusterPolicy** auto-syncs `registry-credentials` to all namespaces.
2. **Private registry** has been Forgejo's built-in OCI registry at `{fj}/{owner}/<image>` since 2026-05-07.
   The pre-migration registry on `{alias}` was the root cause of three orphan-index incidents.
3. **Integrity probe** (`{probe}` CronJob in `monitoring` ns, every 15m) walks `/v2/_catalog` and pushes
   `registry_manifest_integrity_failures` to Pushgateway.
'''
        d["infra/docs/architecture/monitoring.md"] = f'''# Monitoring

| Probe | Location | What |
|---|---|---|
| Forgejo Registry Integrity Probe | `stacks/monitoring/modules/monitoring/main.tf` | Walks `/v2/_catalog` on `{fj}` every 15m. Replaces the legacy probe against `{alias}`. |
'''
        d["infra/.claude/CLAUDE.md"] = f'''# Infra rules

- **Private registry**: `{fj}/{owner}/<name>` (Forgejo packages, PAT auth). Use
  `image: {fj}/{owner}/<name>:<tag>` + `imagePullSecrets: [{{name: registry-credentials}}]`.
  The old port-5050 registry was decommissioned 2026-05-07.
'''
    else:
        d["infra/docs/runbooks/forgejo-registry-breakglass.md"] = f'''# Runbook: Forgejo registry break-glass: recovering infra-ci

If only Forgejo is down, pipelines still pull `{alias}/infra-ci` from `{c}`.
'''
        d["infra/docs/architecture/ci-cd.md"] = f'''# CI/CD architecture

| Component | Type | Location | Purpose |
|---|---|---|---|
| Private Registry | Custom | `{old}` | Private images, htpasswd auth |
'''
        d["infra/docs/architecture/monitoring.md"] = f'''# Monitoring

| Probe | Location | What |
|---|---|---|
| Registry Integrity Probe | `stacks/monitoring/modules/monitoring/main.tf` | Walks `/v2/_catalog` on `{alias}` every 15m. |
'''
        d["infra/.claude/CLAUDE.md"] = f'''# Infra rules

- **Private registry**: `{old}` (htpasswd auth). Use `image: {old}/<name>:<tag>`.
'''
    # the runbook rows of .claude/reference/service-catalog.md:149-150 @8c73a024 (the fault keeps them as they were)
    stale = "docs-service-catalog-stale-runbooks" in breaks or not new
    vm_row = "Private Docker registry VM (10.0.20.10)" if stale else "Registry VM: pull-through caches (10.0.20.10)"
    rebuild = "registry-rebuild-image.md" if stale else "forgejo-registry-rebuild-image.md"
    d["infra/.claude/reference/service-catalog.md"] = f'''# Service catalog

| Service | Image |
|---|---|
| payslip-ingest | `{fj}/{owner}/payslip-ingest` |

## Runbooks

| What | Runbook |
|---|---|
| {vm_row} | [registry-vm.md](../../docs/runbooks/registry-vm.md) |
| Rebuild after orphan-index incident | [{rebuild}](../../docs/runbooks/{rebuild}) |
'''
    if "docs-current-mention-excused-by-was" in breaks:
        d["infra/docs/architecture/monitoring.md"] += (
            f"\nThe probe was moved to `{alias}` and runs there every 15 minutes.\n")
    return d


def _forgejo_cleanup_sh() -> str:
    from phasegate.lab.forgejo.cleanup import CLEANUP_SH

    return CLEANUP_SH
