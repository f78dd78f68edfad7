"""The Allure report a reviewer reads at sign-off: labels, links, environment, categories,
evidence attachments, history across daily runs, the HTML, and verdicts as metrics.

Results come from allure-pytest-bdd (it records features, scenarios and Gherkin steps as
Allure sees them); this module adds what a reviewer of *this* migration needs on top:

- labels `phase`, `project`, `registry`, `node` and a link to the plan's section per gate;
- `environment.properties`, `executor.json` (Woodpecker) and `categories.json`, which sorts
  red gates into *Product defects* (a gate judged the registry or cluster wrong) and *Test
  broken* (the suite or its environment could not judge: unreachable, timeout, auth, 5xx);
- the attachment API steps call (`attach_text`, `attach_table`, `attach_promql`,
  `attach_integrity`, `attach_pulls`, `attach_cutover_matrix`, `attach_http`); every body
  passes `phasegate.secrets.redact` before it is written, and `scrub()` re-redacts the whole
  results directory at the end of a run as a second line of defence;
- `render()`: the HTML with Allure 3 (npm `allure`, project-local, Java-free) or Allure 2,
  keeping the history of previous runs so the bake's 14 days show as a trend;
- `push_verdicts()`: each scenario's outcome as `phasegate_gate_passed` to the Pushgateway.

No pytest here: the pytest plugin and the CLI call these functions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phasegate.secrets import redact

if TYPE_CHECKING:
    from phasegate.prometheus import Pushgateway

SUITE_ROOT = Path(__file__).resolve().parent.parent
# Allure 3 and Allure 2 live in project-local npm prefixes (scripts/setup.sh installs them).
TOOLS_DIR = SUITE_ROOT / ".tools"
ALLURE3_ENV = "PHASEGATE_ALLURE3"  # path to an `allure` (3.x) binary, overriding the local one
ALLURE2_ENV = "PHASEGATE_ALLURE2"

PHASES = tuple(f"phase{i}" for i in range(6))
# Names of outline parameters (Examples columns) that become labels of the same name.
PARAM_LABELS = ("project", "registry", "node")

PRODUCT_DEFECTS = "Product defects"
TEST_BROKEN = "Test broken"

# Allure marks GateFailed (an AssertionError) `failed` and every other exception `broken`
# (phasegate.verdict.Broken: Unreachable, TimedOut, AuthError, ServerError, WriteRefused;
# a missing secret; a bug in a step). The categories follow that split.
CATEGORIES: list[dict] = [
    {
        "name": PRODUCT_DEFECTS,
        "matchedStatuses": ["failed"],
        "description": "A gate judged the registry or the cluster wrong (GateFailed / assertion): "
                       "fix the product, not the suite.",
    },
    {
        "name": TEST_BROKEN,
        "matchedStatuses": ["broken"],
        "description": "The gate could not be judged: the suite or its environment failed "
                       "(unreachable, timeout, auth missing or refused, server error, write refused, suite bug).",
    },
]


# Pending (a bake window still open, nothing wrong so far) and NotJudged (the inventory opts the gate
# out) are neither a pass nor a skip: their results get Allure's own `unknown` status, a message that
# starts with the outcome's word, a label `outcome`, and a category each (mark_open_outcomes()).
PENDING = "pending"
NOT_JUDGED = "not_judged"
STATES = ("passed", "failed", "broken", PENDING, NOT_JUDGED)  # phasegate_gate_state{state=...}
OUTCOME_LABEL = "outcome"
OUTCOME_TITLES = {PENDING: "Pending: the window is still open", NOT_JUDGED: "Not judged: opted out in the inventory"}
OUTCOME_PREFIX = {PENDING: "PENDING: ", NOT_JUDGED: "NOT JUDGED: "}
# [\s\S]* rather than (?s).*: Allure 3 compiles these as JavaScript RegExps, which have no inline flags
# (an "(?s)" pattern throws inside the awesome plugin and the report comes out empty); Java reads both.
CATEGORIES += [
    {
        "name": "Pending (window still open)",
        "matchedStatuses": ["unknown"],
        "messageRegex": "PENDING: [\\s\\S]*",
        "description": "A bake criterion whose window is still open and saw nothing wrong so far (Argo Rollouts' "
                       "Inconclusive): day N of M and what is still needed. Not a pass: the exit verdict waits.",
    },
    {
        "name": "Not judged (opted out in the inventory)",
        "matchedStatuses": ["unknown"],
        "messageRegex": "NOT JUDGED: [\\s\\S]*",
        "description": "The inventory explicitly opts this gate out; the message carries its reason.",
    },
]


class ReportError(RuntimeError):
    """The report could not be rendered (no Allure installed, Allure failed): one line."""


# --------------------------------------------------------------------------
# What a gate is, for the report
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """One scenario run (an outline row is its own gate)."""

    phase: str  # "phase0" .. "phase5" ("" if the scenario has no phase tag)
    name: str  # the scenario name with <params> filled in
    feature: str
    params: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def project(self) -> str:
        return str(self.params.get("project", ""))


def gate_name(template: str, params: Mapping[str, Any]) -> str:
    name = template
    for k, v in params.items():
        name = name.replace(f"<{k}>", str(v))
    return name


def phase_of(markers: Iterable[str]) -> str:
    found = sorted(set(markers) & set(PHASES))
    return found[0] if found else ""


def labels(gate: Gate, report_settings) -> list[tuple[str, str]]:
    """(name, value) labels of a gate: phase, plan title as epic/parent suite, feature as suite,
    and project/registry/node from the outline parameters."""
    out: list[tuple[str, str]] = []
    if gate.phase:
        out.append(("phase", gate.phase))
        section = report_settings.phases.get(gate.phase)
        title = section.title if section else gate.phase
        out += [("epic", title), ("parentSuite", title)]
    if gate.feature:
        out.append(("suite", gate.feature))
    for key in PARAM_LABELS:
        value = gate.params.get(key)
        if value:
            out.append((key, str(value)))
    return [(k, redact(v)) for k, v in out]


def plan_link(phase: str, report_settings) -> tuple[str, str] | None:
    """(url, name) of the plan's section the gate signs off."""
    section = report_settings.phases.get(phase)
    if not section:
        return None
    url = str(report_settings.plan_url)
    return (f"{url}#{section.anchor}" if section.anchor else url), f"Plan: {section.title}"


# --------------------------------------------------------------------------
# Files beside the results: environment, executor, categories
# --------------------------------------------------------------------------


def suite_version() -> str:
    try:
        from importlib.metadata import version

        return version("phasegate")
    except Exception:
        return "unknown"


def suite_git_sha(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    try:
        out = subprocess.run(["git", "-C", str(SUITE_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            sha = out.stdout.strip()
            dirty = subprocess.run(["git", "-C", str(SUITE_ROOT), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10)
            return sha + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    # a CI checkout without .git still knows what it built
    return env.get("CI_COMMIT_SHA", "unknown")


def environment(inv, *, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the reviewer needs to know about the run; names and URLs only, never a secret."""
    props: dict[str, str] = {
        "inventory": inv.name,
        "inventory.file": inv.source,
        "registry.forgejo": f"{inv.forgejo.url} (owner {inv.forgejo.owner})",
        "registry.private": str(inv.private_registry.url),
        "cluster": (inv.cluster.context or "the kubeconfig's current context")
                   + (f" ({inv.cluster.kubeconfig})" if inv.cluster.kubeconfig else ""),
        "suite.version": suite_version(),
        "suite.git_sha": suite_git_sha(env),
    }
    for key, value in _extra_environment(inv):
        props[key] = value
    return {k: redact(str(v)) for k, v in props.items() if v not in (None, "")}


def _extra_environment(inv):
    """Sections other areas add to the inventory, when present."""
    for section, fields in (
        ("metrics", ("prometheus_url", "pushgateway_url")),
    ):
        obj = getattr(inv, section, None)
        if obj is None:
            continue
        for f in fields:
            value = getattr(obj, f, None)
            if isinstance(value, str) and value:
                yield f"{section}.{f}", value


def write_environment(results_dir: Path, props: Mapping[str, str]) -> Path:
    path = Path(results_dir) / "environment.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{_prop_escape(k)}={_prop_escape(redact(v))}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _prop_escape(s: str) -> str:
    # java.util.Properties: escape separators and backslashes; keep UTF-8 readable for Allure 3
    return str(s).replace("\\", "\\\\").replace("\n", " ").replace("=", "\\=").replace(":", "\\:")


def executor(env: Mapping[str, str] | None = None) -> dict | None:
    """executor.json from the CI's variables (Woodpecker); None outside CI."""
    env = os.environ if env is None else env
    if env.get("CI_PIPELINE_NUMBER") or env.get("CI_PIPELINE_URL") or env.get("CI_SYSTEM_NAME") == "woodpecker":
        number = env.get("CI_PIPELINE_NUMBER", "")
        repo = env.get("CI_REPO", "")
        out = {
            "name": "Woodpecker",
            "type": "woodpecker",
            "url": env.get("CI_SYSTEM_URL", ""),
            "buildOrder": int(number) if number.isdigit() else None,
            "buildName": " ".join(p for p in (repo, f"#{number}" if number else "",
                                             env.get("CI_WORKFLOW_NAME", "")) if p),
            "buildUrl": env.get("CI_PIPELINE_URL", ""),
            "reportName": "phasegate",
        }
        return {k: redact(v) if isinstance(v, str) else v for k, v in out.items() if v not in (None, "")}
    return None


def write_support_files(results_dir: Path, inv, env: Mapping[str, str] | None = None) -> None:
    """environment.properties, categories.json and (on CI) executor.json into the results."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    write_environment(results_dir, environment(inv, env=env))
    (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")
    ex = executor(env)
    if ex:
        (results_dir / "executor.json").write_text(json.dumps(ex, indent=2), encoding="utf-8")


def write_result(results_dir: Path, *, name: str, full_name: str, status: str, message: str, trace: str,
                 labels: Sequence[tuple[str, str]], links: Sequence[tuple[str, str]], params: Mapping[str, Any],
                 start_ms: int, stop_ms: int) -> Path:
    """An Allure result for a gate allure-pytest-bdd never saw start (its fixtures failed before the
    scenario began): without it the gate would vanish from the report instead of showing red."""
    import uuid

    from allure_commons.utils import md5

    test_case_id = md5(full_name)
    values = [str(params[k]) for k in sorted(params)]
    result = {
        "uuid": str(uuid.uuid4()),
        "historyId": f"{test_case_id}.{md5(*values)}",
        "testCaseId": test_case_id,
        "fullName": full_name,
        "name": redact(name),
        "status": status,
        "statusDetails": {"message": redact(message), "trace": redact(trace)},
        "stage": "finished",
        "start": start_ms,
        "stop": stop_ms,
        "labels": [{"name": k, "value": redact(str(v))} for k, v in labels],
        "links": [{"type": "link", "url": u, "name": n} for u, n in links],
        "parameters": [{"name": k, "value": redact(str(v))} for k, v in params.items()],
        "steps": [],
    }
    path = Path(results_dir) / f"{result['uuid']}-result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result), encoding="utf-8")
    return path


def scrub(results_dir: Path, since: float | None = None) -> int:
    """Redact every text file of the results (written since `since`); returns files changed.

    The attachment API redacts already; this catches what others write (captured stdout,
    exception texts) so no secret reaches the report even by a path nobody thought of."""
    changed = 0
    root = Path(results_dir)
    if not root.is_dir():
        return 0
    for path in root.rglob("*"):
        if not path.is_file() or (since is not None and path.stat().st_mtime < since - 1):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # images and other binary attachments
        clean = redact(text)
        if clean != text:
            path.write_text(clean, encoding="utf-8")
            changed += 1
    return changed


# --------------------------------------------------------------------------
# Attachment API (call from steps; a no-op when no Allure results are written)
# --------------------------------------------------------------------------

_CSS = (
    "<style>body{font:13px/1.4 system-ui,sans-serif;margin:8px}table{border-collapse:collapse}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f3f3}td.ok{background:#e5f6e5;color:#14621b}td.bad{background:#fbe4e4;color:#9b1c1c}"
    "code,pre{font:12px ui-monospace,monospace}caption{text-align:left;font-weight:600;padding:4px 0}</style>"
)


def _allure():
    import allure

    return allure


def label(name: str, *values: str) -> None:
    """Add a label to the running scenario (e.g. `label("node", "k8s-node1")`)."""
    _allure().dynamic.label(name, *[redact(str(v)) for v in values if v])


def attach_text(name: str, text: str) -> None:
    allure = _allure()
    allure.attach(redact(str(text)), name=redact(name), attachment_type=allure.attachment_type.TEXT)


def attach_json(name: str, doc: Any) -> None:
    """A JSON attachment (e.g. a bake criterion's chart data, "criterion-data"), redacted like the rest."""
    allure = _allure()
    allure.attach(redact(json.dumps(doc, indent=1)), name=redact(name), attachment_type=allure.attachment_type.JSON)


def attach_html(name: str, body_html: str) -> None:
    """An HTML attachment; the caller must have escaped data (the table helpers do)."""
    allure = _allure()
    doc = f"<!doctype html><html><head><meta charset='utf-8'>{_CSS}</head><body>{body_html}</body></html>"
    allure.attach(redact(doc), name=redact(name), attachment_type=allure.attachment_type.HTML)


def table_html(columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> str:
    """An escaped HTML table; a cell that is a bool shows as a green yes / red no."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, bool):
                cells.append(f"<td class='{'ok' if v else 'bad'}'>{'&#10004; yes' if v else '&#10008; no'}</td>")
            elif isinstance(v, Cell):
                cls = "" if v.ok is None else f" class='{'ok' if v.ok else 'bad'}'"
                mark = "" if v.ok is None else ("&#10004; " if v.ok else "&#10008; ")
                cells.append(f"<td{cls}>{mark}{html.escape(redact(v.text))}</td>")
            else:
                cells.append(f"<td>{html.escape(redact('' if v is None else str(v)))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{html.escape(redact(caption))}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def table_markdown(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v):
        if isinstance(v, bool):
            return "yes" if v else "**NO**"
        if isinstance(v, Cell):
            return v.text if v.ok is None else (f"yes {v.text}".strip() if v.ok else f"**NO** {v.text}".strip())
        return redact("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Cell:
    """A table cell with a verdict (ok True/False, or None for plain text) and a short detail."""

    ok: bool | None
    text: str = ""


def attach_table(name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], caption: str = "") -> None:
    rows = list(rows)
    attach_html(name, table_html(columns, rows, caption) + f"<p>{len(rows)} row(s)</p>")


def attach_http(name: str = "HTTP exchanges", mark: int = 0) -> bool:
    """The redacted HTTP exchanges since `mark` (phasegate.http.TRANSCRIPT.mark()); False if none."""
    from phasegate.http import TRANSCRIPT

    items = TRANSCRIPT.since(mark)
    if not items:
        return False
    attach_text(name, TRANSCRIPT.render(items))
    return True


def attach_promql(query: str, result: Any, *, window: str = "", at: Any = None, name: str = "PromQL") -> None:
    """The PromQL a gate asked, the window it judged and what came back.

    `result` is Prometheus' `data` object (`{"resultType", "result"}`), its `result` list,
    or any list of `{"metric": {...}, "value"|"values": ...}` samples."""
    if isinstance(result, Mapping) and "result" in result:
        rtype, series = result.get("resultType", ""), result.get("result")
    else:
        rtype, series = "", result
    rows = []
    if isinstance(series, list):
        for s in series:
            if not isinstance(s, Mapping):
                rows.append(["", str(s), ""])
                continue
            metric = s.get("metric", {}) or {}
            lbl = "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"
            samples = s.get("values") or ([s["value"]] if "value" in s else [])
            if len(samples) > 6:  # a range vector: first, last and the extremes tell the story
                vals = [float(v[1]) for v in samples]
                shown = f"{len(samples)} samples, min {min(vals):g}, max {max(vals):g}, last {samples[-1][1]} @ {_ts(samples[-1][0])}"
            else:
                shown = "; ".join(f"{v[1]} @ {_ts(v[0])}" for v in samples)
            rows.append([lbl, shown, ""])
    else:
        rows.append(["(scalar)", str(series), ""])
    meta = [("query", query)]
    if window:
        meta.append(("window", window))
    if at is not None:
        meta.append(("evaluated at", _ts(at)))
    if rtype:
        meta.append(("result type", rtype))
    head = "".join(f"<p><b>{html.escape(k)}:</b> <code>{html.escape(redact(str(v)))}</code></p>" for k, v in meta)
    body = table_html(["series", "value @ time", ""], [r[:2] + [""] for r in rows]) if rows else "<p>(empty result)</p>"
    attach_html(name, head + body)


def _ts(v: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(float(v), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    except (TypeError, ValueError, OverflowError):
        return str(v)


def _as_dict(obj: Any) -> dict:
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return {k: getattr(obj, k) for k in dir(obj) if not k.startswith("_") and not callable(getattr(obj, k))}


def attach_integrity(broken: Iterable[Any], *, summary: str = "", name: str = "Integrity: broken references") -> None:
    """Broken references (phasegate.integrity.BrokenReference or dicts with repository, tag,
    digest, kind, status, path) as a table, with the walk's summary line above it."""
    rows = []
    for b in broken:
        d = _as_dict(b)
        path = d.get("path") or ()
        rows.append([d.get("repository", ""), d.get("tag", ""), d.get("digest", ""), d.get("kind", ""),
                     d.get("status", ""), " -> ".join(map(str, path)) if not isinstance(path, str) else path])
    head = f"<p>{html.escape(redact(summary))}</p>" if summary else ""
    attach_html(name, head + table_html(["repository", "tag", "digest", "kind", "status", "path from the tag"], rows)
                + f"<p>{len(rows)} broken reference(s)</p>")


def attach_pulls(results: Iterable[Any], *, name: str = "Pulls per node") -> None:
    """Per-node pull results: dicts/objects with node, image, ok, and detail (digest or error)."""
    rows = []
    for r in results:
        d = _as_dict(r)
        ok = d.get("ok", d.get("passed"))
        detail = d.get("detail") or d.get("digest") or d.get("error") or ""
        rows.append([d.get("node", ""), d.get("image", d.get("reference", "")),
                     Cell(bool(ok), "pulled" if ok else "failed"), detail])
    attach_table(name, ["node", "image", "pull", "digest / error"], rows)


CUTOVER_COLUMNS = ("stack flipped", "rollout complete", "imageID from Forgejo", "digest matches", "integrity")


def cutover_rows(matrix: Iterable[Any]) -> list[list[Any]]:
    """Rows of the Phase 3 matrix; each entry has `project` and one value per column
    (bool, Cell, or (bool, detail)) under the column name or its snake_case key."""
    rows = []
    for entry in matrix:
        d = _as_dict(entry)
        row: list[Any] = [d.get("project", "")]
        for col in CUTOVER_COLUMNS:
            key = col.replace(" ", "_").replace("imageID", "image_id").lower()
            v = d.get(col, d.get(key))
            if isinstance(v, tuple) and len(v) == 2:
                v = Cell(bool(v[0]), str(v[1]))
            row.append(Cell(None, "not checked") if v is None else v)
        rows.append(row)
    return rows


def attach_cutover_matrix(matrix: Iterable[Any], *, name: str = "Phase 3 cutover matrix") -> None:
    """The cutover matrix, project x {stack flipped, rollout complete, imageID from Forgejo,
    digest matches, integrity}, as an HTML table and as Markdown (for pasting into the PR)."""
    rows = cutover_rows(matrix)
    columns = ["project", *CUTOVER_COLUMNS]
    attach_html(name, table_html(columns, rows))
    allure = _allure()
    allure.attach(table_markdown(columns, rows), name=f"{name} (Markdown)", attachment_type=allure.attachment_type.TEXT,
                  extension="md")


# --------------------------------------------------------------------------
# Verdicts as metrics (Pushgateway)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    phase: str
    gate: str
    project: str
    state: str  # one of STATES

    @property
    def passed(self) -> bool:
        return self.state == "passed"


def mark_open_outcomes(results_dir: Path, since: float | None = None) -> int:
    """Give every result labelled `outcome=pending|not_judged` Allure's `unknown` status and a message
    that names the outcome (allure-pytest-bdd would call the exception *broken*). Returns the count."""
    n = 0
    for path in Path(results_dir).glob("*-result.json"):
        if since is not None and path.stat().st_mtime < since - 1:
            continue
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        state = next((lbl.get("value") for lbl in doc.get("labels", []) if lbl.get("name") == OUTCOME_LABEL), None)
        if state not in OUTCOME_PREFIX:
            continue
        details = doc.setdefault("statusDetails", {})
        message = str(details.get("message", ""))
        message = re.sub(r"^phasegate\.verdict\.(Pending|NotJudged): ", "", message)
        if not message.startswith(OUTCOME_PREFIX[state]):
            message = OUTCOME_PREFIX[state] + message
        details["message"] = message
        details["trace"] = ""
        doc["status"] = "unknown"
        for step in doc.get("steps", []):
            if step.get("status") == "broken":
                step["status"] = "unknown"
                step.setdefault("statusDetails", {})["trace"] = ""
        path.write_text(json.dumps(doc), encoding="utf-8")
        n += 1
    return n


def push_verdicts(gateway: Pushgateway, job: str, verdicts: Iterable[Verdict], run_timestamp: float | None = None) -> int:
    """Each verdict in its own Pushgateway group {job, phase, gate, project}, replaced (PUT) on
    every run, so a gate keeps its last verdict until it is judged again: `phasegate_gate_state{state}`
    (one-hot over STATES) and, for judged gates only, `phasegate_gate_passed`; plus
    `phasegate_run_timestamp` per phase. Returns the number of groups pushed. The caller opens
    the write guard (pushing is the one write a read-only run makes, and only on request)."""
    ts = time.time() if run_timestamp is None else run_timestamp
    pushed = 0
    phases: set[str] = set()
    for v in verdicts:
        body = ("# HELP phasegate_gate_state 1 for the gate's outcome in its last run: passed, failed, broken, "
                "pending (window still open), not_judged (opted out).\n"
                "# TYPE phasegate_gate_state gauge\n"
                + "".join(f'phasegate_gate_state{{state="{s}"}} {1 if v.state == s else 0}\n' for s in STATES))
        if v.state in ("passed", "failed", "broken"):  # judged: a pending gate is not "not passed"
            body += ("# HELP phasegate_gate_passed 1 if the gate passed in its last run, 0 if it failed or broke.\n"
                     "# TYPE phasegate_gate_passed gauge\n"
                     f"phasegate_gate_passed {1 if v.passed else 0}\n")
        gateway.replace_group(job, {"phase": v.phase, "gate": redact(v.gate), "project": v.project}, body,
                              what=f"push of {v.gate!r} to the Pushgateway")
        pushed += 1
        phases.add(v.phase)
    for phase in sorted(phases):
        body = ("# HELP phasegate_run_timestamp Unix time of the last phasegate run of this phase.\n"
                "# TYPE phasegate_run_timestamp gauge\n"
                f"phasegate_run_timestamp {ts:.3f}\n")
        gateway.replace_group(job, {"phase": phase}, body, what="push of phasegate_run_timestamp to the Pushgateway")
    return pushed


# --------------------------------------------------------------------------
# HTML: Allure 3 (preferred, Java-free) or Allure 2, with history
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    engine: str  # "allure3" | "allure2"
    index: Path  # open this (Allure 3: the summary page linking the dashboard and the report)
    output: Path
    # Allure 3: "dashboard" (the trend across runs) and "awesome" (the gates), each one
    # self-contained file; Allure 2: {"awesome": index} (one file with its own trend widget)
    pages: Mapping[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def gates_page(self) -> Path:
        return self.pages.get("awesome", self.index)


def allure3_binary() -> Path | None:
    explicit = os.environ.get(ALLURE3_ENV)
    candidates = [Path(explicit)] if explicit else []
    candidates.append(TOOLS_DIR / "allure3" / "node_modules" / ".bin" / "allure")
    return next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)


def allure2_binary() -> Path | None:
    explicit = os.environ.get(ALLURE2_ENV)
    candidates = [Path(explicit)] if explicit else []
    candidates.append(TOOLS_DIR / "allure2" / "node_modules" / ".bin" / "allure")
    found = next((p for p in candidates if p.is_file() and os.access(p, os.X_OK)), None)
    return found if found and shutil.which("java") else None


def render(results_dir: Path, output_dir: Path, history_dir: Path | None = None, *, engine: str = "auto",
           report_name: str = "phasegate", history_limit: int = 30, timeout: float = 600) -> Rendered:
    """Render the HTML. `auto` tries Allure 3 and falls back to Allure 2 if 3 is missing or fails."""
    results_dir, output_dir = Path(results_dir).resolve(), Path(output_dir).resolve()
    if not results_dir.is_dir() or not any(results_dir.glob("*-result.json")):
        raise ReportError(f"no Allure results in {results_dir} (run the gates first)")
    if not (results_dir / "categories.json").exists():
        (results_dir / "categories.json").write_text(json.dumps(CATEGORIES, indent=2), encoding="utf-8")
    history_dir = Path(history_dir).resolve() if history_dir else None
    errors = []
    order = {"auto": ["allure3", "allure2"], "allure3": ["allure3"], "allure2": ["allure2"]}[engine]
    for name in order:
        try:
            fn = _render_allure3 if name == "allure3" else _render_allure2
            return fn(results_dir, output_dir, history_dir, report_name, history_limit, timeout)
        except ReportError as e:
            errors.append(f"{name}: {e}")
    raise ReportError("; ".join(errors))


def _run(argv: list[str], timeout: float, cwd: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}  # no secrets in its env
    env["ALLURE_NO_ANALYTICS"] = "true"  # honoured by some Allure versions; strip_analytics() does the rest
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ReportError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s") from None
    except OSError as e:
        raise ReportError(f"cannot run {argv[0]}: {e}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ReportError(f"{Path(argv[0]).name} exited {proc.returncode}: {redact(' | '.join(tail))}")


def _render_allure3(results_dir: Path, output_dir: Path, history_dir: Path | None, report_name: str,
                    history_limit: int, timeout: float) -> Rendered:
    binary = allure3_binary()
    if binary is None:
        raise ReportError(f"Allure 3 not installed (run scripts/setup.sh, or set {ALLURE3_ENV})")
    if output_dir.exists():
        shutil.rmtree(output_dir)
    config: dict[str, Any] = {
        "name": report_name,
        "output": str(output_dir),
        "categories": CATEGORIES,
        # the awesome report as one self-contained file: it opens from file:// (the multi-file
        # report fetches its data and a browser refuses that from file://)
        "plugins": plugins_allure3(report_name, history_limit),
    }
    if history_dir:
        history_dir.mkdir(parents=True, exist_ok=True)
        config["historyPath"] = str(history_dir / "history.jsonl")  # Allure 3 appends this run to it
        config["historyLimit"] = history_limit
    with tempfile.TemporaryDirectory(prefix="phasegate-allure3-") as tmp:
        rc = Path(tmp) / "allurerc.json"
        rc.write_text(json.dumps(config), encoding="utf-8")
        dirs = [str(results_dir)]
        matrix = write_cutover_matrix(results_dir, Path(tmp) / "matrix")
        if matrix:
            dirs.append(str(matrix))
        _run([str(binary), "generate", *dirs, "--config", str(rc), "--output", str(output_dir)], timeout, Path(tmp))
    pages = {name: output_dir / name / "index.html" for name in ALLURE3_PLUGINS}
    index = output_dir / "index.html"  # the summary page: one card per plugin, the dashboard first
    for page in [index, *pages.values()]:
        if not page.exists():
            raise ReportError(f"Allure 3 wrote no {page.relative_to(output_dir)} under {output_dir}")
        strip_analytics(page)
    # a Phase 3 run opens on its cutover matrix: the gates' card leads to the Global Attachments tab
    link_files(index, ALLURE3_PLUGINS, anchors={"awesome": "#globalAttachments"} if matrix else {})
    return Rendered("allure3", index, output_dir, pages)


def _render_allure2(results_dir: Path, output_dir: Path, history_dir: Path | None, report_name: str,
                    history_limit: int, timeout: float) -> Rendered:
    binary = allure2_binary()
    if binary is None:
        raise ReportError(f"Allure 2 not installed or no java (set {ALLURE2_ENV})")
    previous = history_dir / "allure2" if history_dir else None
    if previous and previous.is_dir():
        # Allure 2 reads the previous report's history from <results>/history
        dest = results_dir / "history"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(previous, dest)
    _run([str(binary), "generate", "--clean", "--name", report_name, "--single-file", str(results_dir),
          "-o", str(output_dir)], timeout, results_dir)
    strip_analytics(output_dir / "index.html")
    if previous is not None:
        # the single file carries no history/ folder: a multi-file run yields the trend to keep
        with tempfile.TemporaryDirectory(prefix="phasegate-allure2-") as tmp:
            _run([str(binary), "generate", "--clean", str(results_dir), "-o", tmp], timeout, results_dir)
            if (Path(tmp) / "history").is_dir():
                if previous.exists():
                    shutil.rmtree(previous)
                shutil.copytree(Path(tmp) / "history", previous)
    index = output_dir / "index.html"
    return Rendered("allure2", index, output_dir, {"awesome": index})


# Both Allure 2 and 3 put Google Analytics into every report (Allure 3 unconditionally): a
# report opened by a reviewer, or by the suite's browser test, must not call out to anyone.
_ANALYTICS = [
    re.compile(r"<script[^>]*googletagmanager\.com[^>]*>\s*</script>"),
    re.compile(r"<script>\s*window\.dataLayer\s*=[^<]*?gtag\([^<]*?</script>", re.S),
]


def strip_analytics(index: Path) -> None:
    text = index.read_text(encoding="utf-8")
    clean = text
    for pattern in _ANALYTICS:
        clean = pattern.sub("", clean)
    if "googletagmanager" in clean:
        raise ReportError(f"{index}: could not remove the Allure template's analytics tag")
    if clean != text:
        index.write_text(clean, encoding="utf-8")


# --------------------------------------------------------------------------
# Charts of the bake criteria (issue 21): "criterion-data" JSON -> an inline PNG
# --------------------------------------------------------------------------


def attach_criterion_data(data) -> None:
    """A criterion's chart data (phasegate.charts.CriterionData, or anything whose `to_json()` gives
    the same JSON) as the attachment "criterion-data"; the chart hook (pytest_report.CriterionCharts)
    draws it next to it."""
    from phasegate import charts

    allure = _allure()
    allure.attach(redact(json.dumps(data.to_json())), name=charts.ATTACHMENT_NAME,
                  attachment_type=allure.attachment_type.JSON)


def attach_criterion_chart(data, *, title: str = "", png: bytes | None = None) -> None:
    """The chart of a criterion as a PNG attachment (Allure shows images inline); `png`: drawn already."""
    from phasegate import charts

    allure = _allure()
    name = charts.CHART_NAME.format(title=title or data.title or "bake criterion")
    allure.attach(png or charts.render_png(data, title=title), name=redact(name),
                  attachment_type=allure.attachment_type.PNG)


# --------------------------------------------------------------------------
# Allure 3's plugins: the trend across runs (dashboard) and the gates (awesome)
# --------------------------------------------------------------------------

# Both ship with the `allure` 3.18.0 package scripts/setup.sh pins (@allurereport/plugin-dashboard
# and plugin-awesome are its exact-version dependencies). The dashboard comes first: its card
# leads the summary page the report opens on.
ALLURE3_PLUGINS = ("dashboard", "awesome")
TREND_TITLE = "Runs over time (the bake's daily runs): passed, failed, broken, pending"


def link_files(summary: Path, plugins: Iterable[str], anchors: Mapping[str, str] | None = None) -> None:
    """The summary page links each plugin's report as `<plugin>/` (`href: `${context.id}/``,
    @allurereport/core 3.18.0 dist/report.js:868): a web server answers that with its index.html,
    a browser on file:// with a directory listing. Link the file itself."""
    text, anchors = summary.read_text(encoding="utf-8"), anchors or {}
    for plugin in plugins:
        old, new = f'"href":"{plugin}/"', f'"href":"{plugin}/index.html{anchors.get(plugin, "")}"'
        if old not in text and new not in text:
            raise ReportError(f"{summary}: no link to the {plugin} report (Allure's summary page changed?)")
        text = text.replace(old, new)
    summary.write_text(text, encoding="utf-8")


def plugins_allure3(report_name: str, history_limit: int) -> dict[str, Any]:
    """The allurerc `plugins`: each one self-contained file (a browser refuses the multi-file
    report's data fetches from file://). The dashboard draws the history (one bar per run, each
    status its own colour: a pending gate, which is not `passed`, never looks green). Options:
    @allurereport/plugin-dashboard 3.18.0 dist/model.d.ts:9 (layout), @allurereport/charts-api
    dist/types.d.ts:224 (statusDynamics: title, limit, statuses; no `statuses` = all of them)."""
    layout = [
        {"type": "statusDynamics", "title": TREND_TITLE, "limit": history_limit},
        {"type": "currentStatus", "title": "This run"},
        {"type": "statusTransitions", "title": "What changed since the previous run", "limit": history_limit},
    ]
    return {
        "dashboard": {"options": {"singleFile": True, "reportName": f"{report_name}: trend across runs",
                                  "layout": layout}},
        # steps expanded (Allure's default opens failed ones only): a green criterion's chart is
        # one click away, not two
        "awesome": {"options": {"singleFile": True, "reportName": report_name,
                                "groupBy": ["parentSuite", "suite", "subSuite"], "stepTreeExpansion": "expanded"}},
    }


# --------------------------------------------------------------------------
# The Phase 3 cutover matrix (project x check), derived from the rows' own steps
# --------------------------------------------------------------------------

# Step text -> check, first match wins: tolerant of wording (the rows' steps may be reworded
# or split); a step that matches nothing is not a column.
CUTOVER_CHECKS: tuple[tuple[str, re.Pattern], ...] = (
    ("template", re.compile(r"pod template|template image", re.I)),
    ("rollout", re.compile(r"rollout|rolled out", re.I)),
    ("digest", re.compile(r"digest|imageID", re.I)),
    ("pods", re.compile(r"running pod|pods? (of it )?run", re.I)),
    ("integrity", re.compile(r"integrity", re.I)),
    ("order", re.compile(r"before it|cutover order|in order", re.I)),
)
MATRIX_COLUMNS = ("template", "rollout", "pods", "digest", "integrity", "order")
MATRIX_NAME = "Phase 3 cutover matrix"
# Allure step status -> (cell kind, text). Steps after a red one do not run (Allure: skipped).
_CELL = {"passed": ("ok", "\u2714 passed"), "failed": ("bad", "\u2718 failed"),
         "broken": ("broken", "\u26a0 could not judge"), "skipped": ("none", "not run"),
         "unknown": ("none", "pending / not judged")}  # Pending and NotJudged are Allure's unknown
NO_STEP = ("none", "no step")  # the scenario has no step for this check


@dataclass(frozen=True)
class MatrixCell:
    status: str  # an Allure step status; "" when the row never reached the step
    message: str = ""


@dataclass(frozen=True)
class MatrixRow:
    project: str
    status: str  # the row's own Allure status
    cells: Mapping[str, MatrixCell]


def _check_of(step_name: str) -> str | None:
    return next((check for check, rx in CUTOVER_CHECKS if rx.search(step_name)), None)


def cutover_matrix(results: Iterable[Mapping[str, Any]]) -> list[MatrixRow]:
    """One row per Phase 3 result that names a project, in the order the rows ran; each cell is
    the status of the row's step for that check (a check split into several steps takes the
    worst of them)."""
    worst = ["passed", "skipped", "unknown", "broken", "failed"]
    rows = []
    for r in sorted(results, key=lambda r: r.get("start", 0)):
        lbl = {x.get("name"): x.get("value") for x in r.get("labels", [])}
        params = {p.get("name"): p.get("value") for p in r.get("parameters", [])}
        project = lbl.get("project") or params.get("project")
        if lbl.get("phase") != "phase3" or not project:
            continue
        cells: dict[str, MatrixCell] = {}
        for step in r.get("steps", []):
            check = _check_of(step.get("name", ""))
            if check is None:
                continue
            status = step.get("status") or "unknown"
            message = (step.get("statusDetails") or {}).get("message", "")
            prev = cells.get(check)
            if prev is None or worst.index(status if status in worst else "unknown") > worst.index(prev.status):
                cells[check] = MatrixCell(status if status in worst else "unknown", message)
        rows.append(MatrixRow(project, r.get("status", "unknown"), cells))
    return rows


def read_results(results_dir: Path) -> list[dict]:
    out = []
    for path in Path(results_dir).glob("*-result.json"):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


MATRIX_NOTE = ("Each cell is the row's own step for that check; not run: the row stopped at an earlier red step; "
               "no step: the scenario has no step for it.")


def _cell(cell: MatrixCell | None) -> tuple[str, str]:
    return _CELL.get(cell.status, ("none", cell.status)) if cell else NO_STEP


def matrix_summary(rows: Sequence[MatrixRow]) -> str:
    red = [r.project for r in rows if r.status != "passed"]
    return f"{len(rows) - len(red)} of {len(rows)} project(s) cut over" + (f"; not cut over: {', '.join(red)}" if red else "")


def matrix_png(rows: Sequence[MatrixRow]) -> bytes:
    from phasegate import charts

    checks = list(MATRIX_COLUMNS)
    table = [(r.project, [_cell(r.cells.get(c))[::-1] for c in checks]) for r in rows]
    return charts.table_png(MATRIX_NAME, ["project", *checks], table, MATRIX_NOTE, subtitle=matrix_summary(rows))


def matrix_html(rows: Sequence[MatrixRow]) -> str:
    checks = list(MATRIX_COLUMNS)
    head = "".join(f"<th>{c}</th>" for c in ["project", *checks])
    body = []
    for row in rows:
        cells = [f"<td><b>{html.escape(redact(row.project))}</b></td>"]
        for check in checks:
            cell = row.cells.get(check)
            cls, text = _cell(cell)
            tip = f" title='{html.escape(redact(cell.message.splitlines()[0]))}'" if cell and cell.message else ""
            cells.append(f"<td class='{cls}'>{html.escape(text)}</td>".replace("'>", f"'{tip}>", 1))
        body.append("<tr>" + "".join(cells) + "</tr>")
    summary = matrix_summary(rows)
    css = _CSS.replace("</style>", "td.broken{background:#fff4d6;color:#7a5200}td.none{color:#777}</style>")
    return (f"<!doctype html><html><head><meta charset='utf-8'>{css}</head><body>"
            f"<h3>{MATRIX_NAME}</h3><p>{html.escape(redact(summary))}</p>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<p>{html.escape(MATRIX_NOTE)}</p>"
            "</body></html>")


def matrix_markdown(rows: Sequence[MatrixRow]) -> str:
    checks = list(MATRIX_COLUMNS)
    mark = {"passed": "yes", "failed": "**NO**", "broken": "could not judge"}
    lines = ["| project | " + " | ".join(checks) + " |", "|" + "---|" * (len(checks) + 1)]
    for row in rows:
        vals = [mark.get(row.cells[c].status, _cell(row.cells[c])[1]) if c in row.cells else NO_STEP[1] for c in checks]
        lines.append(f"| {redact(row.project)} | " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def write_cutover_matrix(results_dir: Path, out_dir: Path) -> Path | None:
    """The matrix as Allure *global attachments* (image, HTML, Markdown) in a results folder of its
    own, read beside the run's results: Allure 3 shows them on the report's first page (tab Global
    Attachments). A `*-globals.json` {attachments: [{name, source, type, timestamp}]} is what
    Allure 3 reads as globals (@allurereport/reader 3.18.0 dist/allure2/index.js:113, :343).
    None when the run has no Phase 3 row."""
    rows = cutover_matrix(read_results(results_dir))
    if not rows:
        return None
    import uuid

    out_dir.mkdir(parents=True, exist_ok=True)
    now = int(time.time() * 1000)
    attachments = []
    # the image first: it shows at its natural size (an HTML frame cannot size itself from file://)
    for ext, mime, body, suffix in (("png", "image/png", matrix_png(rows), ""),
                                    ("html", "text/html", redact(matrix_html(rows)).encode(), " (HTML)"),
                                    ("md", "text/markdown", redact(matrix_markdown(rows)).encode(), " (Markdown)")):
        source = f"{uuid.uuid4()}-attachment.{ext}"
        (out_dir / source).write_bytes(body)
        attachments.append({"name": MATRIX_NAME + suffix, "source": source, "type": mime, "timestamp": now})
    (out_dir / f"{uuid.uuid4()}-globals.json").write_text(json.dumps({"attachments": attachments, "errors": []}),
                                                          encoding="utf-8")
    return out_dir
