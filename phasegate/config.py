"""The inventory: everything the plan names, read from one TOML file.

The shipped `phasegate.toml` holds the real environment's values; the lab
writes its own. Secrets never live in the file: the inventory names the
environment variables that hold them (`*_env` keys), and `Inventory.secret()`
reads them into `Secret` objects that never print their value.

The schema is a tree of dataclasses. `load()` checks every key and type and
raises `InventoryError` with one line naming the key, so a typo stops the run
at start-up instead of silently dropping a gate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from phasegate.secrets import Secret

T = typing.TypeVar("T")

DEFAULT_INVENTORY = Path(__file__).resolve().parent.parent / "phasegate.toml"
INVENTORY_ENV = "PHASEGATE_INVENTORY"


class InventoryError(Exception):
    """The inventory is malformed or a secret it names is missing (one line)."""


class Url(str):
    """An absolute http(s) URL; validated when the inventory is loaded."""


# --------------------------------------------------------------------------
# Schema. Add a field here and in phasegate.toml; the loader does the rest.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0  # seconds to open a TCP/TLS connection
    read: float = 30.0  # seconds between two bytes of an answer
    total: float = 120.0  # wall-clock ceiling for one HTTP exchange, body included
    retries: int = 2  # extra tries for idempotent reads on connect errors / 502-504
    backoff: float = 0.5  # first retry delay, doubled each time
    poll_interval: float = 2.0  # how often a wait re-checks its condition


@dataclass(frozen=True)
class SecretRef:
    """A secret by the environment variable that holds it."""

    env: str
    needed_by: list[str] = field(default_factory=list)  # markers whose gates need it
    description: str = ""


@dataclass(frozen=True)
class RegistryUser:
    username: str
    secret: str  # key into [secrets]


@dataclass(frozen=True)
class PrivateRegistry:
    """registry-private: distribution registry:2 with htpasswd Basic auth."""

    url: Url
    host: str  # the name images use, e.g. registry.viktorbarzin.me
    aliases: list[str] = field(default_factory=list)  # other names of the same registry
    user: RegistryUser | None = None
    ca_bundle: str = ""  # PEM file; empty = system trust store
    container: str = "registry-private"


@dataclass(frozen=True)
class Forgejo:
    url: Url  # ROOT_URL, e.g. https://forgejo.viktorbarzin.me
    host: str  # registry host in image names
    owner: str
    pusher: RegistryUser
    puller: RegistryUser
    cleaner: RegistryUser
    ca_bundle: str = ""
    smoke_image: str = "smoketest"
    smoke_tag: str = "1"
    namespace: str = "forgejo"
    deployment: str = "forgejo"
    container: str = "forgejo"


@dataclass(frozen=True)
class MetricQueries:
    """PromQL templates of the bake gates; `$instance`, `$namespace`, `$container`, `$cronjob`,
    `$alert`, `$pvc` (and `$pods` per workload) are filled in from the inventory (string.Template). Every series named here is one
    the real Prometheus keeps (docs/inventory.md, "Bake signals"; phasegate/lab/scrape_config.py)."""

    failures: str = 'registry_manifest_integrity_failures{instance="$instance"}'
    catalog_accessible: str = 'registry_manifest_integrity_catalog_accessible{instance="$instance"}'
    last_run: str = 'registry_manifest_integrity_last_run_timestamp{instance="$instance"}'
    alert: str = 'ALERTS{alertname="$alert", alertstate="firing", instance="$instance"}'
    working_set: str = 'container_memory_working_set_bytes{namespace="$namespace", container="$container"}'
    memory_limit: str = (
        'kube_pod_container_resource_limits{namespace="$namespace", container="$container", resource="memory"}'
    )
    restarts: str = 'kube_pod_container_status_restarts_total{namespace="$namespace", container="$container"}'
    oom_events: str = 'container_oom_events_total{namespace="$namespace", container="$container"}'
    # Jobs the CronJob controller creates are named <cronjob>-<scheduled time in unix minutes> (kubernetes
    # pkg/controller/cronjob/cronjob_controllerv2.go getJobName); a Job created by hand is not a scheduled run
    job_start: str = 'kube_job_status_start_time{namespace="$namespace", job_name=~"$cronjob-[0-9]+"}'
    job_failed: str = 'kube_job_status_failed{namespace="$namespace", job_name=~"$cronjob-[0-9]+"}'
    cronjob_last_success: str = 'kube_cronjob_status_last_successful_time{namespace="$namespace", cronjob="$cronjob"}'
    pvc_used: str = 'kubelet_volume_stats_used_bytes{namespace="$namespace", persistentvolumeclaim="$pvc"}'
    pvc_capacity: str = 'kubelet_volume_stats_capacity_bytes{namespace="$namespace", persistentvolumeclaim="$pvc"}'
    # cAdvisor's containers of one project workload's pods ($pods: the pod-name regex of a Deployment's or a
    # CronJob's pods, filled in by phasegate.bake_images), with the `image` containerd names (kept PCV:413)
    workload_containers: str = (
        'container_start_time_seconds{namespace="$namespace", pod=~"$pods", container!="", container!="POD"}'
    )


@dataclass(frozen=True)
class Loki:
    """Loki (pod logs shipped by Alloy): the retention job's own lines. `$namespace`, `$container` filled in."""

    url: Url = Url("http://loki.monitoring.svc.cluster.local:3100")
    ca_bundle: str = ""
    cleanup_lines: str = '{namespace="$namespace", job="$namespace/$container"} |~ "^(Summary: |  deleted |  FAIL )"'


@dataclass(frozen=True)
class UptimeKuma:
    """Uptime Kuma: the external /api/healthz monitor's heartbeats (Socket.IO, logged in)."""

    url: Url = Url("http://uptime-kuma.uptime-kuma.svc.cluster.local")
    ca_bundle: str = ""
    username: str = "admin"
    password_secret: str = "uptime_kuma_password"  # key into [secrets]
    healthz_monitor: str = "[External] forgejo"
    max_beat_gap_minutes: int = 15  # 300 s checks: a longer gap is "no data"


@dataclass(frozen=True)
class Metrics:
    """Prometheus, the Pushgateway and the names the probe and alerts use."""

    prometheus_url: Url = Url("http://prometheus-server.monitoring.svc.cluster.local")
    pushgateway_url: Url = Url("http://prometheus-prometheus-pushgateway.monitoring:9091")
    ca_bundle: str = ""
    forgejo_instance: str = "forgejo.viktorbarzin.me"  # `instance` label of the Forgejo probe
    private_instance: str = "registry.viktorbarzin.me:5050"  # the old probe's instance label (MON:252-431)
    probe_namespace: str = "monitoring"
    probe_cronjob: str = "forgejo-integrity-probe"
    probe_push_job: str = "forgejo-integrity-probe"  # Pushgateway job label
    probe_interval_minutes: int = 15
    probe_max_age_minutes: int = 60  # older = stale (RegistryIntegrityProbeStale)
    integrity_alerts: list[str] = field(default_factory=lambda: [
        "RegistryManifestIntegrityFailure", "RegistryIntegrityProbeStale", "RegistryCatalogInaccessible"])
    failure_alert: str = "RegistryManifestIntegrityFailure"
    healthz_instance: str = "https://forgejo.viktorbarzin.me/api/healthz"  # the Uptime Kuma monitor's target URL
    probe_job_timeout: float = 600.0  # seconds a Job from the probe CronJob may take (Phase 0)
    queries: MetricQueries = field(default_factory=MetricQueries)


@dataclass(frozen=True)
class Retention:
    """The forgejo-cleanup CronJob and the keep-set rules of its script."""

    namespace: str = "forgejo"
    cronjob: str = "forgejo-cleanup"
    container: str = "cleanup"
    schedule: str = "0 4 * * *"
    keep_last_n: int = 10
    always_keep: list[str] = field(default_factory=lambda: ["latest"])
    keep_substring: str = "cache"  # tags containing it are kept (buildkit caches)
    dry_run_env: str = "DRY_RUN"
    phase0_dry_run: str = "true"
    dry_run_local: str = "forgejo_cleanup_dry_run"  # the Terraform local DRY_RUN comes from (CT:17-18 @6d5204db)
    terraform_file: str = "stacks/forgejo/cleanup.tf"  # in the infra repository ([infra_repo] path)


@dataclass(frozen=True)
class PushStorm:
    """The opt-in push-storm smoke (@writes @load): concurrent chunked pushes the way CI pushes."""

    enabled: bool = False  # opt-in: it writes ~1 GiB to production Forgejo; false = the gate is not judged
    image: str = "phasegate-push-storm"  # the only package it creates, under forgejo.owner; removed after
    pushes: int = 4  # concurrent pushes (builds finishing together, as on 2026-06-09)
    layers: int = 4  # layers per image
    layer_size: str = "64m"  # bytes per layer (incompressible; "64m" = 64 MiB, as body sizes are written)
    chunk_size: str = "16m"  # one PATCH body: below the ingress's body-size limit (cluster.forgejo_max_body)


@dataclass(frozen=True)
class Bake:
    """Phase 2: the bake window and its exit thresholds."""

    start: dt.date = dt.date(2026, 5, 18)  # bake clock start: the day the last project went dual-push
    days: int = 14
    last_dual_push: dt.date = dt.date(2026, 5, 18)  # newest project's first dual-push
    near_oom_ratio: float = 0.9  # working set / memory limit at or above = near OOM
    min_retention_runs: int = 14
    dry_run_flip_day: int = 7  # runs from this day of the bake on must delete (DRY_RUN=false)
    gc_weekday: str = "Sunday"
    healthz_now_timeout: float = 10.0
    max_hole_minutes: int = 10  # a longer gap in a needed Prometheus series is "no data" (2 min scrapes)
    pvc: str = "forgejo-data-encrypted"
    pvc_storage_limit: str = "50Gi"  # resize.topolvm.io/storage_limit: the autoresize cap
    pvc_max_used_of_limit: float = 0.8  # used bytes at or above this share of the cap = no headroom
    full_verify_weekday: str = "Sunday"  # every byte of every Forgejo image, once a week
    not_judged: dict[str, str] = field(default_factory=dict)  # criterion -> why it is explicitly not judged


@dataclass(frozen=True)
class SshOptions:
    """How `ssh` reaches a host: files the inventory names, never ~/.ssh edits.

    Host-key checking is always on (phasegate passes StrictHostKeyChecking=yes
    and BatchMode=yes on the command line, so a config file cannot turn it off).
    Empty values leave ssh's own defaults (the user's ~/.ssh/config, keys and
    known_hosts) in charge.
    """

    config: str = ""  # ssh_config file (-F); empty = ssh's default config
    identity_file: str = ""  # private key (-i, IdentitiesOnly)
    known_hosts: str = ""  # UserKnownHostsFile
    connect_timeout: float = 10.0  # seconds to open the SSH connection
    command_timeout: float = 60.0  # seconds one remote command (or Docker API call) may take


@dataclass(frozen=True)
class BreakglassCopy:
    """One place the infra-ci break-glass tarballs land (the VM's disk, the NAS copy)."""

    name: str
    dir: str  # absolute path on that host
    url: str = ""  # ssh://user@host[:port]; empty = the registry VM
    ssh: SshOptions | None = None  # empty = the registry VM's ssh options


@dataclass(frozen=True)
class Breakglass:
    """`docker save | gzip` tarballs of infra-ci written after each build (Phase 1)."""

    image: str = "infra-ci"  # Forgejo package name whose newest tag the tarball must carry
    file_template: str = "infra-ci-{tag}.tar.gz"
    latest_link: str = "latest"
    tag_pattern: str = "^[0-9a-f]{8}$"  # build tags (short SHA); latest, *cache* and sha256: are not builds
    max_age_hours: float = 192.0  # the newest tarball may not be older than this
    copies: list[BreakglassCopy] = field(default_factory=lambda: [
        BreakglassCopy(name="registry-vm", dir="/opt/registry/data/private/_breakglass"),
        # The NAS copy as the registry VM sees its NFS mount; point `url` at the NAS to check it directly.
        BreakglassCopy(name="nas", dir="/mnt/nas/registry/_breakglass"),
    ])


@dataclass(frozen=True)
class RegistryVm:
    """The registry VM (10.0.20.10): registry-private and the pull-through caches, reached over SSH."""

    url: str = "ssh://root@10.0.20.10"  # ssh://user@host[:port]; the Docker API is reached through it
    ssh: SshOptions = field(default_factory=SshOptions)
    docker_api_version: str = "1.41"
    pull_through_caches: list[str] = field(default_factory=lambda: [
        "registry-dockerhub", "registry-ghcr", "registry-quay", "registry-k8s", "registry-kyverno", "registry-nginx",
    ])
    compose_file: str = "/opt/registry/docker-compose.yml"
    old_endpoints: list[Url] = field(default_factory=lambda: [
        Url("https://registry.viktorbarzin.me:5050"), Url("https://registry.viktorbarzin.me"),
    ])  # must no longer serve a registry after Phase 4
    storage_path: str = "/opt/registry/data/private"  # registry-private's blob storage
    storage_keep: list[str] = field(default_factory=lambda: ["_breakglass"])  # entries that stay after the purge
    storage_grace_days: int = 7  # blob storage goes this long after decommission
    decommissioned_on: dt.date | None = None  # day registry-private was stopped; unset = not yet
    breakglass: Breakglass = field(default_factory=Breakglass)


@dataclass(frozen=True)
class GitHub:
    """GitHub's public REST API: repositories archived once their project is cut over (Phase 3)."""

    api_url: Url = Url("https://api.github.com")
    ca_bundle: str = ""
    archived_after_cutover: dict[str, str] = field(default_factory=lambda: {
        "beads-server": "ViktorBarzin/beadboard",
        "claude-memory-mcp": "ViktorBarzin/claude-memory-mcp",
    })  # project (its [[projects]] name) -> owner/repo
    # Phase 1: "beadboard: Push to Forgejo. New .woodpecker.yml. Disable GHA workflow." (plan line 95)
    workflows_disabled: dict[str, str] = field(default_factory=lambda: {"beads-server": "ViktorBarzin/beadboard"})


@dataclass(frozen=True)
class DockerApi:
    """A Docker Engine API for the Phase 0 `docker login` (unix://, tcp:// or ssh://).

    Empty url = the runner's own engine, as the docker CLI finds it: $DOCKER_HOST, else the
    default socket. `not_judged` (a reason) is the only way to leave the gate out.
    """

    url: str = ""
    version: str = "1.41"
    ssh: SshOptions = field(default_factory=SshOptions)  # used when url is ssh://
    not_judged: str = ""  # why this run does not judge docker login (empty = it is judged)


@dataclass(frozen=True)
class PlanSection:
    """A section of the migration plan a gate signs off (the report links each gate to it)."""

    title: str  # the heading as the plan writes it
    anchor: str  # the heading's anchor in the rendered plan


def _plan_sections() -> dict[str, PlanSection]:
    return {
        "phase0": PlanSection("Phase 0 — Prepare Forgejo", "phase-0--prepare-forgejo-1-pr-no-cutover-risk"),
        "phase1": PlanSection("Phase 1 — Source migration", "phase-1--source-migration-parallel-safe-no-production-impact"),
        "phase2": PlanSection("Phase 2 — Bake", "phase-2--bake-14-days"),
        "phase3": PlanSection("Phase 3 — Cutover", "phase-3--cutover-one-pr-per-project-single-session"),
        "phase4": PlanSection("Phase 4 — Decommission", "phase-4--decommission"),
        "phase5": PlanSection("Phase 5 — Docs", "phase-5--docs"),
    }


@dataclass(frozen=True)
class Report:
    """Where the Allure results, the HTML and its history live; what the report links to."""

    results_dir: str = "reports/allure-results"  # relative paths are relative to the working directory
    html_dir: str = "reports/allure-report"
    history_dir: str = "reports/history"  # kept between runs (the bake job stores and restores it)
    history_limit: int = 30  # runs of trend kept in the history
    plan_url: Url = Url(
        "https://forgejo.viktorbarzin.me/viktor/infra/src/branch/master/docs/plans/"
        "2026-05-07-forgejo-registry-consolidation-plan.md"
    )
    phases: dict[str, PlanSection] = field(default_factory=_plan_sections)
    push_job: str = "phasegate"  # Pushgateway job of the verdict metrics (--push-metrics)


@dataclass(frozen=True)
class InfraStack:
    """A row of the plan's Phase 3 cutover table: a Terraform stack and the images it must pull from Forgejo."""

    project: str
    path: str  # stack file relative to the infra checkout, e.g. stacks/payslip-ingest/main.tf
    images: list[str] = field(default_factory=list)  # image names expected at <forgejo host>/<owner>/<name>


@dataclass(frozen=True)
class InfraDoc:
    """A row of the plan's Phase 5 docs table."""

    path: str  # relative to the infra checkout ("../CLAUDE.md" = the monorepo root)
    update: str = ""  # what the plan says changes (shown in reports)
    replaced_by: str = ""  # set when the plan replaces this doc: absent, or a superseded banner naming it
    # what the document must now say (the plan's Phase 5 table): each string in a current (not
    # historical) statement, under a heading containing `section` when set; $forgejo_host = [forgejo] host
    must_mention: list[str] = field(default_factory=list)
    section: str = ""
    procedure: bool = False  # a runbook that must hold its procedure (numbered steps / commands)


_INFRA_STACKS = [
    ("payslip-ingest", "stacks/payslip-ingest/main.tf", ["payslip-ingest"]),
    ("job-hunter", "stacks/job-hunter/main.tf", ["job-hunter"]),
    ("claude-agent-service", "stacks/claude-agent-service/main.tf", ["claude-agent-service"]),
    ("fire-planner", "stacks/fire-planner/main.tf", ["fire-planner"]),
    ("wealthfolio-sync", "stacks/wealthfolio/main.tf", ["wealthfolio-sync"]),
    ("freedify", "stacks/freedify/factory/main.tf", ["freedify"]),
    ("chrome-service", "stacks/chrome-service/main.tf", ["chrome-service-novnc"]),
    ("beads-server", "stacks/beads-server/main.tf", ["beadboard", "claude-agent-service"]),
]


@dataclass(frozen=True)
class InfraRepo:
    """The infra repository checkout the static gates (Phases 3-5) read."""

    path: str = "../infra"  # relative to the inventory file, or absolute
    stacks: list[InfraStack] = field(default_factory=lambda: [InfraStack(p, f, i) for p, f, i in _INFRA_STACKS])
    infra_ci_image: str = "infra-ci"
    infra_ci_pipelines: list[str] = field(default_factory=lambda: [
        ".woodpecker/default.yml", ".woodpecker/drift-detection.yml",
        ".woodpecker/build-cli.yml", ".woodpecker/build-ci-image.yml"])
    claude_md: str = "../CLAUDE.md"  # the monorepo root's CLAUDE.md
    claude_memory_install_url: str = "https://forgejo.viktorbarzin.me/viktor/claude-memory-mcp.git"
    claude_memory_old_install: str = "github:ViktorBarzin/claude-memory-mcp"
    cloud_init: str = "stacks/infra/main.tf"
    registry_credentials: str = "stacks/kyverno/modules/kyverno/registry-credentials.tf"
    registry_credentials_secret: str = "registry-credentials"
    monitoring_module: str = "stacks/monitoring/modules/monitoring"
    forgejo_stack: str = "stacks/forgejo/main.tf"  # the Forgejo PVC and its autoresize annotations
    mirror_script: str = "scripts/setup-forgejo-containerd-mirror.sh"  # hosts.toml on existing nodes
    vm_compose_template: str = "modules/docker-registry/docker-compose.yml"  # cloud-init writes it to the VM
    apply_context: str = "ci/woodpecker/push/default"  # Forgejo commit status of the infra apply pipeline
    old_probe_cronjob: str = "registry-integrity-probe"
    docs: list[InfraDoc] = field(default_factory=list)
    historical_headings: list[str] = field(default_factory=lambda: [
        "history", "historical", "decommission", "legacy", "migration", "archive", "post-mortem", "incident"])
    # phrases that put a sentence in the past by themselves; "was"/"removed" do not (a sentence saying the
    # registry "was moved to 10.0.20.10:5050" is current); dated events and links to post-mortems, plans
    # and ADRs are history by their structure (phasegate/infra_repo.py)
    historical_markers: list[str] = field(default_factory=lambda: [
        "decommissioned", "migrated from", "pre-migration", "formerly", "previously", "retired",
        "replaced by", "replaces", "no longer", "gone"])
    # names that describe the old registry as current besides its hosts: the old probe, the VM as "the
    # private registry VM" (case-insensitive)
    stale_phrases: list[str] = field(default_factory=lambda: ["private registry VM", "private Docker registry VM"])
    procedure_min_steps: int = 3  # numbered steps or command lines a runbook's procedure holds at least


@dataclass(frozen=True)
class Cluster:
    """The Kubernetes cluster: how to reach it and the objects the cluster gates read."""

    kubeconfig: str = ""  # empty = $KUBECONFIG or ~/.kube/config
    context: str = ""  # empty = the kubeconfig's current context
    request_timeout: float = 30.0  # seconds per Kubernetes API call
    wait_timeout: float = 180.0  # ceiling for a clone / pod start / pull to happen
    # the pull secret Kyverno clones into every namespace (policy sync-registry-credentials)
    credentials_namespace: str = "kyverno"
    credentials_secret: str = "registry-credentials"
    clone_excluded_namespaces: list[str] = field(default_factory=lambda: ["kube-system", "kube-public", "kube-node-lease"])
    # Forgejo's objects (Phase 0)
    forgejo_memory: str = "1Gi"  # the floor of request and limit (the plan's 1Gi; production later rose above it)
    # the plan also set FORGEJO__packages__CHUNKED_UPLOAD_PATH; it was removed the same day (Forgejo crash-looped
    # on the root-owned /data: msg@880f7d13; stacks/forgejo/main.tf:122-129 @0cd4afb6)
    forgejo_env: dict[str, str] = field(default_factory=lambda: {"FORGEJO__packages__ENABLED": "true"})
    forgejo_pvc: str = "forgejo-data-encrypted"
    forgejo_pvc_min: str = "15Gi"
    forgejo_ingress: str = "forgejo"
    forgejo_max_body: str = "5g"  # Traefik Buffering middleware maxRequestBodyBytes at least this
    # nodes: containerd's registry config, and where the Forgejo mirror must point
    nodes: list[str] = field(default_factory=list)  # empty = every node the API lists
    containerd_certs_dir: str = "/etc/containerd/certs.d"
    # containerd's own config: cloud-init writes `containerd config default` there and sets config_path by sed
    # (modules/create-template-vm/cloud_init.yaml:76, stacks/infra/main.tf:68 @5d22b449); phasegate.containerd_config
    containerd_config: str = "/etc/containerd/config.toml"
    # in-cluster Traefik LB: 10.0.20.200 until 05-30, then 10.0.20.203 (infra-facts.md section 4)
    forgejo_mirrors: list[str] = field(default_factory=lambda: ["https://10.0.20.200", "https://10.0.20.203"])
    # what the suite creates (fresh namespaces, pods) carries this prefix and label, and only that is deleted
    test_prefix: str = "phasegate-"
    test_label: str = "app.kubernetes.io/managed-by=phasegate"
    node_reader_image: str = "docker.io/library/busybox:1.36"  # reads node files through a hostPath pod


@dataclass(frozen=True)
class Workload:
    """A Deployment or CronJob that runs a project's image (in any container, init containers included)."""

    kind: str  # Deployment | CronJob
    name: str
    namespace: str = ""  # empty = the project's namespace

    def where(self, project_namespace: str = "") -> str:
        return f"{self.kind} {self.namespace or project_namespace}/{self.name}"


@dataclass(frozen=True)
class Project:
    """A project of the migration; [[projects]] lists them in cutover order (docs/inventory.md, "Projects")."""

    name: str
    image: str  # its own image's repository name under the Forgejo owner (and in registry-private)
    images: list[str] = field(default_factory=list)  # more repository names of its own; empty = [image]
    namespace: str = ""  # the namespace of its workloads unless a workload names another
    # every workload that runs its image; empty = cut over outside the cluster (CI files, docs) or none at all
    workloads: list[Workload] = field(default_factory=list)
    stack: str = ""  # infra-repo file(s) whose image reference flips in Phase 3
    repo: str = ""  # Forgejo source repository (owner/name); empty = <owner>/<name>
    cutover: bool = True  # False: dual-push only, no Phase 3 row (hmrc-sync)
    dual_push: bool = True  # False: not in Phase 1 (no pipeline of its own pushes it, e.g. chrome-service)
    pipeline: str = ".woodpecker.yml"  # its Woodpecker file in the source repository
    status_context: str = ""  # commit status context of its build; empty = the combined state

    @property
    def own_images(self) -> list[str]:
        return list(dict.fromkeys([self.image, *self.images]))

    def in_cluster(self) -> bool:
        return bool(self.workloads)

    def workload_namespace(self, w: Workload) -> str:
        return w.namespace or self.namespace


@dataclass(frozen=True)
class DualPush:
    """Phase 1: how the newest build of a project is found and tagged."""

    tag_template: str = "{sha:.8}"  # format() with sha (40 hex) and short (8 hex)
    commit_window: int = 10  # newest commits searched for one whose build succeeded
    push_plugin: str = "woodpeckerci/plugin-docker-buildx"
    # reads the source repositories' commits, statuses and .woodpecker.yml (read:repository)
    repo_reader: RegistryUser = field(default_factory=lambda: RegistryUser("viktor", "forgejo_repo_token"))


@dataclass(frozen=True)
class Inventory:
    name: str
    forgejo: Forgejo
    private_registry: PrivateRegistry
    secrets: dict[str, SecretRef]
    timeouts: Timeouts = field(default_factory=Timeouts)
    metrics: Metrics = field(default_factory=Metrics)
    retention: Retention = field(default_factory=Retention)
    push_storm: PushStorm = field(default_factory=PushStorm)
    bake: Bake = field(default_factory=Bake)
    registry_vm: RegistryVm = field(default_factory=RegistryVm)
    github: GitHub = field(default_factory=GitHub)
    loki: Loki = field(default_factory=Loki)
    uptime_kuma: UptimeKuma = field(default_factory=UptimeKuma)
    docker_api: DockerApi = field(default_factory=DockerApi)
    report: Report = field(default_factory=Report)
    infra_repo: InfraRepo = field(default_factory=InfraRepo)
    dual_push: DualPush = field(default_factory=DualPush)
    cluster: Cluster = field(default_factory=Cluster)
    projects: list[Project] = field(default_factory=list)
    source: str = ""  # path the inventory was read from (not a TOML key)

    def secret(self, key: str) -> Secret:
        """The secret named `key` in [secrets], read from its variable."""
        ref = self.secrets.get(key)
        if ref is None:
            raise InventoryError(f"inventory: no [secrets.{key}] entry (needed by this gate)")
        value = os.environ.get(ref.env)
        if not value:
            raise InventoryError(
                f"secret {key!r} is missing: set the environment variable {ref.env}"
                + (f" ({ref.description})" if ref.description else "")
            )
        return Secret(value, name=key)

    def project(self, name: str) -> Project:
        for p in self.projects:
            if p.name == name:
                return p
        raise InventoryError(f"inventory: no [[projects]] entry named {name!r} "
                             f"(known: {', '.join(p.name for p in self.projects)})")

    def said(self, key: str, text: T) -> T:
        """A value the scenario text gives a gate to judge by (a threshold, a schedule), checked against the
        inventory's `key` (a dotted path, e.g. "cluster.forgejo_memory") and returned as the text says it.

        The text is what a reader of the scenario and its report sees; the inventory is the environment's
        record. When the two disagree the gate cannot judge (Broken), never silently takes one of them
        (tests/test_features_meta.py ties the features' values to the shipped inventory)."""
        value: object = self
        for part in key.split("."):
            value = getattr(value, part)
        if not _same(text, value):
            from phasegate.verdict import Broken

            raise Broken(f"the scenario text says {text!r} where the inventory's {key} is {value!r}: the number a "
                         f"gate judges by must be the same in both (edit the feature or the inventory"
                         f"{f' {self.source}' if self.source else ''})")
        return text

    def cutover_order(self) -> list[Project]:
        """Projects with a Phase 3 cutover, in the plan's order ([[projects]] order)."""
        return [p for p in self.projects if p.cutover]

    def missing_secrets(self, markers: set[str]) -> list[str]:
        """One line per secret that gates with these markers need and that is unset."""
        lines = []
        for key, ref in sorted(self.secrets.items()):
            if set(ref.needed_by) & markers and not os.environ.get(ref.env):
                lines.append(f"{key} (set {ref.env})")
        return lines


def _same(text: object, value: object) -> bool:
    """The scenario's value and the inventory's are the same: numbers by value ("192" is 192.0), booleans by
    their TOML spelling ("true"), everything else as written ("1Gi" is not "1024Mi": say it as the inventory does)."""
    if isinstance(value, bool):
        return str(text).strip().lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(str(text).strip()) == float(value)
        except ValueError:
            return False
    return str(text).strip() == str(value)


# --------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------


def inventory_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    if os.environ.get(INVENTORY_ENV):
        return Path(os.environ[INVENTORY_ENV])
    return DEFAULT_INVENTORY


def load(path: str | os.PathLike | None = None) -> Inventory:
    p = inventory_path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InventoryError(f"inventory {p}: file not found (use --inventory PATH or {INVENTORY_ENV})") from None
    except tomllib.TOMLDecodeError as e:
        raise InventoryError(f"inventory {p}: not valid TOML: {e}") from None
    inv = parse(raw, where=str(p))
    return dataclasses.replace(inv, source=str(p))


def parse(raw: dict, where: str = "inventory") -> Inventory:
    inv = _build(Inventory, raw, "", where)
    _check_references(inv, where)
    return inv


def _check_references(inv: Inventory, where: str) -> None:
    for section, user in (
        ("forgejo.pusher", inv.forgejo.pusher),
        ("forgejo.puller", inv.forgejo.puller),
        ("forgejo.cleaner", inv.forgejo.cleaner),
        ("private_registry.user", inv.private_registry.user),
    ):
        if user is not None and user.secret not in inv.secrets:
            raise InventoryError(f"{where}: {section}.secret = {user.secret!r} names no [secrets.{user.secret}] entry")
    for hook in _REFERENCE_CHECKS:
        hook(inv, where)


def _check_projects(inv: Inventory, where: str) -> None:
    seen: set[str] = set()
    for i, p in enumerate(inv.projects):
        if p.name in seen:
            raise InventoryError(f"{where}: projects[{i}].name = {p.name!r} is listed twice")
        seen.add(p.name)
        for j, w in enumerate(p.workloads):
            if w.kind not in ("Deployment", "CronJob"):
                raise InventoryError(f"{where}: projects[{i}].workloads[{j}].kind = {w.kind!r} must be "
                                     "Deployment or CronJob")
            if not (w.namespace or p.namespace):
                raise InventoryError(f"{where}: projects[{i}].workloads[{j}] ({p.name}: {w.kind} {w.name}) "
                                     "needs a namespace (its own or the project's)")


def _check_timeouts(inv: Inventory, where: str) -> None:
    # a zero or negative timeout would turn every exchange into an instant failure (or none at all)
    t = inv.timeouts
    for name in ("connect", "read", "total", "poll_interval"):
        if not getattr(t, name) > 0:
            raise InventoryError(f"{where}: timeouts.{name} must be more than 0 seconds, got {getattr(t, name)!r}")
    if t.retries < 0 or t.backoff < 0:
        raise InventoryError(f"{where}: timeouts.retries and timeouts.backoff must not be negative")


# Sections added later register extra cross-checks here (e.g. unique project names).
_REFERENCE_CHECKS: list[typing.Callable[[Inventory, str], None]] = [_check_projects, _check_timeouts]


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _build(cls, data, path: str, where: str):
    if not isinstance(data, dict):
        raise InventoryError(f"{where}: [{path or 'top level'}] must be a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise InventoryError(f"{where}: unknown key {key!r} (known here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InventoryError(f"{where}: missing key {key!r}")
            continue
        kwargs[name] = _coerce(hints[name], data[name], key, where)
    return cls(**kwargs)


def _coerce(tp, value, key: str, where: str):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(args[0], value, key, where)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise InventoryError(f"{where}: {key} must be a list, got {type(value).__name__}")
        return [_coerce(item, v, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise InventoryError(f"{where}: {key} must be a table, got {type(value).__name__}")
        return {k: _coerce(item, v, f"{key}.{k}", where) for k, v in value.items()}
    if tp is Url:
        return _url(value, key, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InventoryError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InventoryError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is dt.date:
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise InventoryError(f"{where}: {key} must be a date (YYYY-MM-DD), got {value!r}")
        return value
    if tp is dt.datetime:
        if not isinstance(value, dt.datetime):
            raise InventoryError(f"{where}: {key} must be a date-time (RFC 3339), got {value!r}")
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if tp in (str, bool):
        if type(value) is not tp:
            raise InventoryError(f"{where}: {key} must be a {_type_name(tp)}, got {value!r}")
        return value
    if tp is typing.Any:
        return value
    raise InventoryError(f"{where}: {key}: unsupported schema type {tp!r}")


def _url(value, key: str, where: str) -> Url:
    import httpx

    if not isinstance(value, str):
        raise InventoryError(f"{where}: {key} must be a URL string, got {value!r}")
    try:
        u = httpx.URL(value)
    except Exception:
        raise InventoryError(f"{where}: {key} is not a valid URL: {value!r}") from None
    if u.scheme not in ("http", "https") or not u.host:
        raise InventoryError(f"{where}: {key} must be an absolute http(s) URL, got {value!r}")
    return Url(value.rstrip("/"))


_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def weekday_number(name: str) -> int:
    """Python's weekday() number of a day name (Monday = 0)."""
    return _WEEKDAYS.index(name.strip().lower())


def _check_bake(inv: Inventory, where: str) -> None:
    b = inv.bake
    if b.gc_weekday.strip().lower() not in _WEEKDAYS:
        raise InventoryError(f"{where}: bake.gc_weekday = {b.gc_weekday!r} is not a day name")
    if b.days < 1 or not 0 <= b.dry_run_flip_day < b.days:
        raise InventoryError(f"{where}: bake.days must be >= 1 and 0 <= bake.dry_run_flip_day < bake.days")
    if not 0 < b.near_oom_ratio <= 1:
        raise InventoryError(f"{where}: bake.near_oom_ratio must be in (0, 1], got {b.near_oom_ratio}")


_REFERENCE_CHECKS.append(_check_bake)
