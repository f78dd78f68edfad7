"""The daily bake pipeline (.woodpecker/bake.yml) as the infra's real Woodpecker runs it.

The real CI: Woodpecker agent v3.14.0, Kubernetes backend, namespace `woodpecker`, pull secret
`registry-credentials` (infra stacks/woodpecker/values.yaml:63-70 @0cd4afb6; :46-53 @5d22b449 with
v3.13.0). On that backend each step is its own pod: a step calls only what its image has or what the
step installs, and a file another image made (a venv, an npm prefix) runs only in that image.
`problems()` judges a pipeline by these rules, by the Woodpecker 3 syntax it uses and by the
inventory; the tests below hold bake.yml to it and feed it the defects of issue 19 to prove it fails.
"""

from __future__ import annotations

import copy
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from phasegate import config
from tests import REPO
from tests.gherkin_walk import markers_of, scenarios

PIPELINE_FILE = REPO / ".woodpecker" / "bake.yml"
PVC_FILE = REPO / "deploy" / "bake-pvc.yaml"
PIPELINE = yaml.safe_load(PIPELINE_FILE.read_text())
WOODPECKER_NAMESPACE = "woodpecker"  # WOODPECKER_BACKEND_K8S_NAMESPACE, stacks/woodpecker/values.yaml:69 @0cd4afb6

# --- Woodpecker 3 pipeline syntax (woodpecker-ci/woodpecker @ v3.14.0, the agent's version) -----------
# Workflow keys: pipeline/frontend/yaml/types/workflow.go:23-34.
WORKFLOW_KEYS = {"when", "workspace", "clone", "steps", "services", "labels", "depends_on", "skip_clone"}
# Step keys: pipeline/frontend/yaml/types/container.go:26-57.
STEP_KEYS = {"name", "image", "pull", "commands", "entrypoint", "directory", "settings", "environment",
             "depends_on", "when", "failure", "detach", "volumes", "ports", "dns", "dns_search",
             "backend_options", "privileged", "devices", "extra_hosts", "network_mode", "tmpfs"}
# `when` condition keys: pipeline/frontend/yaml/constraint/constraint.go:43-56.
CONSTRAINT_KEYS = {"ref", "repo", "instance", "platform", "branch", "cron", "status", "matrix", "local",
                   "path", "evaluate", "event"}
# docs/docs/20-usage/20-workflow-syntax.md:284-294 (events), :349 (status: "The only accepted values").
EVENTS = {"push", "pull_request", "pull_request_closed", "pull_request_metadata", "tag", "release",
          "deployment", "cron", "manual"}
STATUSES = {"success", "failure"}
# Kubernetes backend: a volume `<claim>:<path>` mounts the PVC named by the part before ":"
# (pipeline/backend/kubernetes/volume.go:66-76, pod.go:377-402); the name must match dnsPattern after
# lower-casing and "_" -> "-" (utils.go:32-35,60-68), so a host path is refused.
DNS_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# backend_options.kubernetes.resources: requests/limits (docs/.../11-backends/20-kubernetes.md:33-55).
RESOURCE_KEYS = {"requests", "limits"}
# `$VAR`/`${VAR}` is substituted by the server before the step runs, `$$` is a literal `$`
# (docs/docs/20-usage/50-environment.md:32-45; server/pipeline/step_builder/step_builder.go:129 ->
# pipeline/frontend/metadata/substitution.go:24-32, unknown names become ""). Only Woodpecker's own
# CI_* variables are meant to be substituted.
_DOLLAR = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>.|$))")


# --- What each image has ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Image:
    programs: frozenset[str]
    venv: bool  # `python3 -m venv` works as the image comes
    source: str


_COREUTILS = {"sh", "mkdir", "cp", "ln", "cat", "ls", "rm", "mv", "test", "[", "echo", "tar", "find", "sort", "true"}
IMAGES = {
    # busybox only.
    "alpine:3.20": Image(frozenset(_COREUTILS), venv=False, source="alpine: busybox, apk"),
    # nodejs/docker-node 20/bookworm/Dockerfile: FROM buildpack-deps:bookworm, node+npm+yarn in /usr/local;
    # docker-library/buildpack-deps debian/bookworm/scm/Dockerfile: git, mercurial (-> Debian python3),
    # no python3-venv, no pip.
    "node:20-bookworm": Image(frozenset(_COREUTILS | {"node", "npm", "npx", "yarn", "apt-get", "git", "python3"}),
                              venv=False, source="node:20-bookworm"),
    # docker-library/python 3.11/slim-bookworm: CPython with ensurepip (venv works), pip; no node.
    "python:3.11-slim-bookworm": Image(frozenset(_COREUTILS | {"python", "python3", "pip", "apt-get"}),
                                       venv=True, source="python:3.11-slim-bookworm"),
}
SHELL_KEYWORDS = {"if", "then", "else", "elif", "fi", "exit", "cd", "export", ":", "set"}
VENV_FROM_APT = "python3-venv"  # Debian: the venv module and ensurepip's wheels


def _allure3_pin() -> str:
    return re.search(r"^ALLURE3_VERSION=(\S+)$", (REPO / "scripts" / "setup.sh").read_text(), re.M)[1]


def _pvc_name() -> str:
    return yaml.safe_load(PVC_FILE.read_text())["metadata"]["name"]


def _steps(pipeline: dict) -> list[dict]:
    steps = pipeline.get("steps") or []
    return steps if isinstance(steps, list) else [dict(s, name=n) for n, s in steps.items()]


def _when(node: dict) -> list[dict]:
    w = node.get("when", [])
    return w if isinstance(w, list) else [w]


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line: split at && || ; | and at if/then/else/fi, with
    leading VAR=value assignments and redirections dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    out, cur, skip_next = [], [], False
    for tok in lex:
        if skip_next:
            skip_next = False
        elif tok in {"&&", "||", ";", "|", "&"} or (not cur and tok in {"then", "else", "elif", "if", "fi"}):
            if cur:
                out.append(cur)
            cur = []
        elif tok in {">", ">>", "<", "2>", "&>"} or tok.endswith(">"):
            skip_next = True
        elif not cur and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok):
            continue
        else:
            cur.append(tok)
    if cur:
        out.append(cur)
    return out


@dataclass
class Workspace:
    """What earlier steps left in the shared workspace, and with which image."""
    venv_image: str | None = None
    allure_image: str | None = None
    problems: list[str] = field(default_factory=list)


def _pip_problem(argv: list[str]) -> str | None:
    args = argv[argv.index("install") + 1:]
    if "--require-hashes" in args and "-r" in args and args[args.index("-r") + 1] == "requirements.lock":
        return None
    if "--no-deps" in args and args[-1] == "." and not [a for a in args if not a.startswith("-") and a != "."]:
        if args[-2:] != ["-e", "."]:  # phasegate.report finds .tools/ beside its source tree (SUITE_ROOT)
            return f"`{shlex.join(argv)}`: install phasegate editable (-e .), or `phasegate report` looks for .tools/ inside the venv"
        return None  # phasegate itself, its dependencies came from the lock
    return f"`{shlex.join(argv)}` resolves versions anew: install from the lock (--require-hashes -r requirements.lock) or --no-deps ."


def _npm_problem(argv: list[str], pin: str) -> str | None:
    args = argv[argv.index("install") + 1:]
    pkgs, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--prefix":
            skip = True
        elif not a.startswith("-"):
            pkgs.append(a)
    bad = [p for p in pkgs if not re.fullmatch(r"(@?[^@]+)@\d+\.\d+\.\d+", p)
           or (p.startswith("allure@") and p != f"allure@{pin}")]
    if not pkgs or bad:
        return f"`{shlex.join(argv)}`: npm packages must be exact versions, Allure the one scripts/setup.sh pins (allure@{pin})"
    return None


def step_problems(step: dict, ws: Workspace, allure_pin: str) -> list[str]:
    """Each command calls what the step's image has or what the step installed first; files from
    the workspace run only in the image that made them."""
    name, image_name = step.get("name", "?"), step.get("image", "")
    image = IMAGES.get(image_name)
    if image is None:
        return [f"{name}: no facts about image {image_name!r} (add what it ships to IMAGES, with the source)"]
    problems, apt = [], set()
    for line in _as_list(step.get("commands") or []):
        for argv in simple_commands(str(line)):
            prog = argv[0]
            where = f"{name} ({image_name}): `{shlex.join(argv)}`"
            if prog.startswith(".venv/bin/"):
                if ws.venv_image != image_name:
                    problems.append(f"{where} uses .venv made in {ws.venv_image or 'no step'}; its interpreter is that image's")
                if "pip" in Path(prog).name and "install" in argv:
                    problems += [f"{name}: {p}" for p in [_pip_problem(argv)] if p]
                if Path(prog).name == "phasegate" and "report" in argv and ws.allure_image != image_name:
                    problems.append(f"{where}: Allure 3 was installed in {ws.allure_image or 'no step'}, not in this image")
                continue
            if prog in SHELL_KEYWORDS:
                continue
            if prog not in image.programs:
                problems.append(f"{where}: {image_name} has no `{prog}` and the step does not install it")
                continue
            if prog in {"python3", "python"} and argv[1:3] == ["-m", "venv"]:
                if not (image.venv or VENV_FROM_APT in apt):
                    problems.append(f"{where}: {image_name} has no venv module (install {VENV_FROM_APT} first)")
                else:  # a failed `-m venv` leaves whatever .venv an earlier image made
                    ws.venv_image = image_name
            elif prog in {"pip", "python", "python3"} and "install" in argv:
                problems += [f"{name}: {p}" for p in [_pip_problem(argv)] if p]
            elif prog == "apt-get" and "install" in argv:
                apt |= {a for a in argv[argv.index("install") + 1:] if not a.startswith("-")}
            elif prog == "npm" and "install" in argv:
                problems += [f"{name}: {p}" for p in [_npm_problem(argv, allure_pin)] if p]
                if "--prefix" in argv and argv[argv.index("--prefix") + 1] == ".tools/allure3":
                    ws.allure_image = image_name
    return problems


def volume_problems(step: dict, pvc: str) -> list[str]:
    out = []
    for v in _as_list(step.get("volumes") or []):
        claim, _, path = str(v).partition(":")
        if not DNS_PATTERN.match(claim.lower().replace("_", "-")) or claim != pvc:
            out.append(f"{step.get('name')}: volume {v!r} is not `<claim>:<path>` with the claim {pvc!r} "
                       "(the Kubernetes backend mounts PersistentVolumeClaims by name, not host paths)")
        elif not path.startswith("/"):
            out.append(f"{step.get('name')}: volume {v!r} needs an absolute mount path")
    return out


def syntax_problems(pipeline: dict) -> list[str]:
    out = [f"unknown workflow key {k!r}" for k in set(pipeline) - WORKFLOW_KEYS]
    for where, node in [("workflow", pipeline), *[(s.get("name", "?"), s) for s in _steps(pipeline)]]:
        for c in _when(node):
            out += [f"{where}: unknown `when` key {k!r}" for k in set(c) - CONSTRAINT_KEYS]
            out += [f"{where}: status {s!r} is not success/failure" for s in _as_list(c.get("status", [])) if s not in STATUSES]
            out += [f"{where}: unknown event {e!r}" for e in _as_list(c.get("event", [])) if e not in EVENTS]
    for s in _steps(pipeline):
        name = s.get("name", "?")
        out += [f"{name}: unknown step key {k!r}" for k in set(s) - STEP_KEYS]
        if not s.get("image"):
            out.append(f"{name}: no image")
        for var, value in (s.get("environment") or {}).items():
            if isinstance(value, dict) and set(value) != {"from_secret"}:
                out.append(f"{name}: {var} is a mapping other than {{from_secret: NAME}}")
        k8s = (s.get("backend_options") or {}).get("kubernetes", {})
        out += [f"{name}: unknown backend_options key {k!r}" for k in set(s.get("backend_options") or {}) - {"kubernetes"}]
        out += [f"{name}: unknown resources key {k!r}" for k in set(k8s.get("resources") or {}) - RESOURCE_KEYS]
        for line in _as_list(s.get("commands") or []):
            for m in _DOLLAR.finditer(str(line).replace("$$", "")):
                var = m["braced"] or m["bare"]
                if not (var and re.fullmatch(r"CI_[A-Z_]+", var)):
                    out.append(f"{name}: `{m[0]}` in {line!r} is substituted by Woodpecker before the shell sees it (write $$)")
    return out


def secret_problems(pipeline: dict, inv) -> list[str]:
    """The secrets passed are exactly those the read-only bake's gates need (the inventory's
    [secrets] needed_by), exported as the inventory names them, and only to the step running the gates."""
    bake_markers = markers_of([s for s in scenarios() if {"phase2", "readonly"} <= s.tags])
    needed = {k for k, ref in inv.secrets.items() if set(ref.needed_by) & bake_markers}
    given, out = {}, []
    for s in _steps(pipeline):
        for var, value in (s.get("environment") or {}).items():
            if isinstance(value, dict) and "from_secret" in value:
                given[var] = value["from_secret"]
                if not any("pytest" in str(c) for c in _as_list(s.get("commands") or [])):
                    out.append(f"{s.get('name')}: gets secret {value['from_secret']} but runs no gates")
            elif re.search(r"token|password|secret", var, re.I):
                out.append(f"{s.get('name')}: {var} set in clear text")
    for var, secret in given.items():
        if secret not in inv.secrets:
            out.append(f"from_secret {secret!r} is not a [secrets] key of the inventory")
        elif inv.secrets[secret].env != var:
            out.append(f"{secret} must be exported as {inv.secrets[secret].env}, not {var}")
    if missing := needed - set(given.values()):
        out.append(f"secrets the phase2 gates need but the pipeline lacks: {sorted(missing)}")
    if extra := set(given.values()) - needed:
        out.append(f"secrets the read-only bake does not need: {sorted(extra)}")
    return out


def problems(pipeline: dict, inv=None) -> list[str]:
    inv = inv or config.load(REPO / "phasegate.toml")
    pin, pvc, ws = _allure3_pin(), _pvc_name(), Workspace()
    out = syntax_problems(pipeline) + secret_problems(pipeline, inv)
    for s in _steps(pipeline):
        out += volume_problems(s, pvc) + step_problems(s, ws, pin)
    return out


# --- bake.yml holds ---------------------------------------------------------------------------------

def test_bake_yml_runs_as_written_on_the_real_woodpecker():
    assert problems(PIPELINE) == []


def test_runs_only_on_its_named_cron():
    whens = _when(PIPELINE)
    assert whens, "the pipeline needs a workflow-level `when`"
    for w in whens:
        assert _as_list(w.get("event")) == ["cron"], w
        assert isinstance(w.get("cron"), str) and w["cron"], "name the cron, so other crons do not run the bake"


def test_installs_the_locked_suite_and_runs_the_read_only_bake():
    commands = [str(c) for s in _steps(PIPELINE) for c in s.get("commands", [])]
    assert any("--require-hashes -r requirements.lock" in c for c in commands), commands
    runs = [shlex.split(c) for c in commands if "pytest" in c]
    assert len(runs) == 1, runs
    argv = runs[0]
    after = argv[argv.index("pytest") + 1:]  # `python -m pytest -m EXPR`: the marker -m comes after pytest
    assert after[after.index("-m") + 1] == "phase2 and readonly", argv
    assert "--alluredir" in argv or any(a.startswith("--alluredir=") for a in argv)


def test_history_is_restored_before_the_gates_and_kept_after_the_report_also_when_a_gate_fails():
    names = [s["name"] for s in _steps(PIPELINE)]
    pvc = _pvc_name()
    mounts = [s["name"] for s in _steps(PIPELINE) if any(str(v).startswith(f"{pvc}:") for v in s.get("volumes", []))]
    gates = next(s["name"] for s in _steps(PIPELINE) if any("pytest" in str(c) for c in s.get("commands", [])))
    report = next(s["name"] for s in _steps(PIPELINE) if any("phasegate report" in str(c) for c in s.get("commands", [])))
    assert len(mounts) == 2 and names.index(mounts[0]) < names.index(gates) < names.index(report) < names.index(mounts[1]), (names, mounts)
    for step in _steps(PIPELINE)[names.index(gates) + 1:]:  # report, keep, verdict: also after a red gate
        assert any(STATUSES <= set(_as_list(w.get("status"))) for w in _when(step)), step["name"]
    keep = " ".join(str(c) for c in _steps(PIPELINE)[names.index(mounts[1])]["commands"])
    assert "reports/history/." in keep and "reports/allure-results" in keep and "reports/allure-report" in keep
    assert "gates.rc" in " ".join(str(c) for c in _steps(PIPELINE)[-1]["commands"]), "the last step turns a red gate into a red pipeline"


def test_the_claim_manifest_is_a_valid_rwx_pvc_in_the_agents_namespace():
    import kubernetes_validate

    pvc = yaml.safe_load(PVC_FILE.read_text())
    kubernetes_validate.validate(pvc, "1.30", strict=True)
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["namespace"] == WOODPECKER_NAMESPACE
    # steps land on any node: a node-local claim would pin them (nfs-csi main.tf:128-147 @0cd4afb6)
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"] == "nfs-truenas"


def test_the_reader_pod_mounts_the_claim_read_only():
    import kubernetes_validate

    pod = yaml.safe_load((REPO / "deploy" / "bake-reader.yaml").read_text())
    kubernetes_validate.validate(pod, "1.30", strict=True)
    assert pod["metadata"]["namespace"] == WOODPECKER_NAMESPACE
    (vol,) = pod["spec"]["volumes"]
    assert vol["persistentVolumeClaim"] == {"claimName": _pvc_name(), "readOnly": True}
    assert pod["spec"]["activeDeadlineSeconds"] > 0, "it must end by itself"


def test_the_readme_registers_the_job_its_claim_cron_and_secrets():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## The daily bake job (Phase 2)"):]
    section = section[:section.index("\n## ", 3)]
    cron = _when(PIPELINE)[0]["cron"]
    assert "kubectl apply -f deploy/bake-pvc.yaml" in section
    assert f"--name {cron}" in section and f"`{cron}`" in section
    assert "--trusted-volumes" in section, "volumes need a repository trusted for volumes (cli/repo/repo_update.go:38-41 @v3.14.0)"
    # one command per secret, `\`-continued lines joined; a secret without --event cron is never
    # given to a cron pipeline (cli/repo/secret/secret_add.go:73-75, docs/docs/20-usage/40-secrets.md:96-97)
    commands = section.replace("\\\n", " ").splitlines()
    secrets = {v["from_secret"] for s in _steps(PIPELINE) for v in (s.get("environment") or {}).values() if isinstance(v, dict)}
    for secret in secrets:
        assert any("repo secret add" in c and f"--name {secret} " in c and "--event cron" in c for c in commands), secret


# --- the defects of issue 19, fed back: each must be found ------------------------------------------

def _mutate(fn) -> dict:
    p = copy.deepcopy(PIPELINE)
    fn({s["name"]: s for s in _steps(p)})
    return p


def _one_problem_like(pipeline: dict, needle: str) -> None:
    found = problems(pipeline)
    assert found and all(needle in p for p in found), found


def test_host_path_volumes_fail():
    def host_paths(steps):
        for s in steps.values():
            if "volumes" in s:
                s["volumes"] = ["/var/lib/phasegate/bake:/keep"]
    _one_problem_like(_mutate(host_paths), "mounts PersistentVolumeClaims by name, not host paths")


def test_a_venv_made_in_an_image_without_python3_venv_fails():
    def no_apt(steps):
        steps["bake"]["commands"] = [c for c in steps["bake"]["commands"] if "apt-get" not in c]
    found = problems(_mutate(no_apt))
    assert any("bake (node:20-bookworm): `python3 -m venv .venv`: node:20-bookworm has no venv module" in p for p in found), found
    assert all("venv" in p for p in found), found  # and what then runs from the missing .venv


def test_a_venv_used_in_another_image_fails():
    def bake_in_python_image(steps):
        steps["bake"]["image"] = "python:3.11-slim-bookworm"
    _one_problem_like(_mutate(bake_in_python_image), "uses .venv made in python:3.11-slim-bookworm")


def test_an_unpinned_allure_fails():
    def allure_3(steps):
        steps["report"]["commands"] = [c.replace("allure@3.18.0", "allure@3") for c in steps["report"]["commands"]]
    _one_problem_like(_mutate(allure_3), "allure@3.18.0")


def test_an_allure_other_than_setups_pin_fails():
    def allure_other(steps):
        steps["report"]["commands"] = [c.replace("allure@3.18.0", "allure@3.17.1") for c in steps["report"]["commands"]]
    _one_problem_like(_mutate(allure_other), "the one scripts/setup.sh pins")


@pytest.mark.parametrize("install", [".venv/bin/pip install -q .", ".venv/bin/pip install -q -e '.[dev]'",
                                     ".venv/bin/pip install -q --upgrade pip"])
def test_an_unpinned_pip_install_fails(install):
    def unpinned(steps):
        cmds = steps["bake"]["commands"]
        steps["bake"]["commands"] = [install if "requirements.lock" in c else c for c in cmds]
    _one_problem_like(_mutate(unpinned), "resolves versions anew")


def test_phasegate_installed_into_the_venv_not_editable_fails():
    def not_editable(steps):
        steps["bake"]["commands"] = [c.replace(" -e .", " .") for c in steps["bake"]["commands"]]
    _one_problem_like(_mutate(not_editable), "install phasegate editable")


def test_a_host_shell_variable_unescaped_fails():
    def bare_status(steps):
        steps["bake"]["commands"] = [c.replace("$$?", "$?") for c in steps["bake"]["commands"]]
    _one_problem_like(_mutate(bare_status), "substituted by Woodpecker")


def test_a_secret_the_read_only_bake_does_not_need_fails():
    def push_token(steps):
        steps["bake"]["environment"]["PHASEGATE_FORGEJO_PUSH_TOKEN"] = {"from_secret": "forgejo_push_token"}
    _one_problem_like(_mutate(push_token), "does not need: ['forgejo_push_token']")


def test_a_secret_the_bake_needs_missing_fails():
    def drop_pull(steps):
        del steps["bake"]["environment"]["PHASEGATE_FORGEJO_PULL_TOKEN"]
    _one_problem_like(_mutate(drop_pull), "lacks: ['forgejo_pull_token']")


def test_the_delete_capable_cleanup_token_is_refused():
    def add_cleanup(steps):
        steps["bake"]["environment"]["PHASEGATE_FORGEJO_CLEANUP_TOKEN"] = {"from_secret": "forgejo_cleanup_token"}
    _one_problem_like(_mutate(add_cleanup), "does not need: ['forgejo_cleanup_token']")


def test_a_secret_given_to_a_step_that_runs_no_gates_fails():
    def to_report(steps):
        steps["report"]["environment"] = {"PHASEGATE_FORGEJO_PULL_TOKEN": {"from_secret": "forgejo_pull_token"}}
    _one_problem_like(_mutate(to_report), "runs no gates")


def test_syntax_woodpecker_3_does_not_know_fails():
    def drone_style(steps):
        steps["keep"]["when"] = [{"status": ["success", "failure", "killed"]}]
        steps["keep"]["trigger"] = {"event": "cron"}
    found = problems(_mutate(drone_style))
    assert any("status 'killed'" in p for p in found) and any("unknown step key 'trigger'" in p for p in found), found


# The pipeline as issue 19 found it: every one of its defects is named.
ISSUE_19_PIPELINE = """
when:
  - event: cron
    cron: phasegate-bake
steps:
  - name: restore-history
    image: alpine:3.20
    volumes:
      - /var/lib/phasegate/bake:/keep
    commands:
      - mkdir -p reports/history
      - if [ -d /keep/history ]; then cp -a /keep/history/. reports/history/; fi
  - name: bake
    image: python:3.11-slim-bookworm
    environment:
      PHASEGATE_INVENTORY: phasegate.toml
      PHASEGATE_FORGEJO_PULL_TOKEN:
        from_secret: forgejo_pull_token
      PHASEGATE_FORGEJO_CLEANUP_TOKEN:
        from_secret: forgejo_cleanup_token
    commands:
      - python -m venv .venv
      - .venv/bin/pip install -q .
      - .venv/bin/python -m pytest -m "phase2 and readonly" --alluredir reports/allure-results --push-metrics || echo $? > reports/gates.rc
  - name: report
    image: node:20-bookworm
    commands:
      - python3 -m venv .venv && .venv/bin/pip install -q .
      - npm install --no-audit --no-fund --prefix .tools/allure3 allure@3
      - .venv/bin/phasegate report
      - test ! -s reports/gates.rc
    when:
      - status: [success, failure]
  - name: keep-allure-results
    image: alpine:3.20
    volumes:
      - /var/lib/phasegate/bake:/keep
    commands:
      - mkdir -p /keep/history /keep/$CI_PIPELINE_NUMBER
      - cp -a reports/history/. /keep/history/
    when:
      - status: [success, failure]
"""


def test_the_pipeline_issue_19_found_fails_on_each_of_its_defects():
    found = "\n".join(problems(yaml.safe_load(ISSUE_19_PIPELINE)))
    assert "restore-history: volume '/var/lib/phasegate/bake:/keep'" in found
    assert "keep-allure-results: volume '/var/lib/phasegate/bake:/keep'" in found
    assert "report (node:20-bookworm): `python3 -m venv .venv`: node:20-bookworm has no venv module" in found
    assert "report (node:20-bookworm): `.venv/bin/phasegate report` uses .venv made in python:3.11-slim-bookworm" in found
    assert "bake: `.venv/bin/pip install -q .` resolves versions anew" in found
    assert "report: `npm install --no-audit --no-fund --prefix .tools/allure3 allure@3`" in found
    assert "`$?`" in found


def test_simple_commands_splits_the_shell_the_way_the_rules_need():
    assert simple_commands("a x && b || c; d | e") == [["a", "x"], ["b"], ["c"], ["d"], ["e"]]
    assert simple_commands("if [ -s f ]; then cat f; exit 1; fi") == [["[", "-s", "f", "]"], ["cat", "f"], ["exit", "1"]]
    assert simple_commands("DEBIAN_FRONTEND=noninteractive apt-get install -y x") == [["apt-get", "install", "-y", "x"]]
    assert simple_commands("pytest -m 'a and b' || echo $$? > reports/gates.rc") == [["pytest", "-m", "a and b"], ["echo", "$$?"]]
