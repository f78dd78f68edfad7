"""Static checks on a checkout of the infra repository (Terraform, Woodpecker, Markdown).

The Phase 3/4/5 gates read files, not the cluster: what the repository says
the cluster should become. Terraform is read with a real HCL parser
(python-hcl2) and image values are *resolved*: `image = local.image` follows
`locals`, `${var.image_tag}` follows the stack's terragrunt `inputs` (what terragrunt passes as
TF_VAR_image_tag) or else the variable's default, `each.value`
follows the enclosing `for_each`, `<name>.value` follows a `dynamic` block's
`for_each`. A regex on `image =` lines would miss `local.image` and any image
built from a map; that is the whole point of resolving.

python-hcl2 gives no line numbers, so every finding is located afterwards in
the file text (`Locator`): the n-th attribute with the same source text is
the n-th match in document order. Verdicts name `file:line`.

Historical references in documents (Phase 5). A mention of the old registry
(its host, an alias, or the container name) is *historical*, and allowed, when:
  1. it sits under a Markdown heading (any enclosing level) containing one of
     the inventory's `historical_headings` words (History, Decommissioned,
     Legacy, Migration, Post-mortem, ...); or
  2. the document's preamble (before its first `##` heading) carries a
     superseded banner (`superseded`, `replaced by`, `deprecated`, `archived`,
     `historical`): the whole document is then history; or
  3. the sentence holding the mention carries one of `historical_markers`
     (past-tense or retirement words: "decommissioned", "was", "migrated
     from", "pre-migration", "formerly", "legacy", "no longer", ...).
Anything else describes the old registry as current and fails with file:line.
Fenced code blocks count only by rule 1/2: a command is an instruction, not
prose, so a past-tense word elsewhere cannot excuse it.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
import yaml
from hcl2.utils import SerializationOptions

from phasegate.verdict import Broken

_HCL_OPTIONS = SerializationOptions(with_comments=False)


# --------------------------------------------------------------------------
# Terraform: parsing and value resolution
# --------------------------------------------------------------------------


class Unresolved(str):
    """An expression we cannot evaluate statically; rendered back as `${expr}`."""


@dataclass(frozen=True)
class Origin:
    """Where a piece of a resolved value is written: `local.image (stacks/x/main.tf:12)`."""

    what: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.what} ({self.file}:{self.line})" if self.line else f"{self.what} ({self.file})"


@dataclass(frozen=True)
class ImageRef:
    """One `image` attribute of a Terraform module, with its resolved value."""

    value: str  # resolved; parts that cannot be resolved stay as ${...}
    file: str  # path relative to the checkout
    line: int  # the line of the `image = ...` attribute
    expression: str  # the attribute's source text
    block: str  # e.g. kubernetes_deployment.payslip_ingest > spec > container
    origins: tuple[Origin, ...] = ()

    @property
    def where(self) -> str:
        trail = "".join(f" <- {o}" for o in self.origins)
        return f"{self.file}:{self.line} (image = {self.expression}){trail}"


def parse_hcl(path: Path) -> dict:
    try:
        return copy.deepcopy(_parsed_hcl(path.read_text(encoding="utf-8")))  # a copy: a caller may change it
    except FileNotFoundError:
        raise
    except Exception as e:  # the parser's errors carry no stable type
        raise Broken(f"{path}: not valid HCL: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


@functools.lru_cache(maxsize=128)
def _parsed_hcl(text: str) -> dict:
    """One parse per file content: a run's gates read the same stacks again and again (a lark parse of a
    stack is tens of milliseconds, its copy a few hundred microseconds)."""
    return hcl2.loads(text, serialization_options=_HCL_OPTIONS)


def _unquote_key(k: str) -> str:
    return k[1:-1] if len(k) >= 2 and k[0] == '"' and k[-1] == '"' else k


def _is_meta(k: str) -> bool:
    return k.startswith("__") and k.endswith("__")


def _interpolations(s: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, inner) of each `${...}` in a template string, braces balanced, `$${` skipped."""
    i = 0
    while True:
        j = s.find("${", i)
        if j < 0:
            return
        if j > 0 and s[j - 1] == "$":
            i = j + 2
            continue
        depth, k, quote = 0, j + 1, False
        while k < len(s):
            c = s[k]
            if c == '"' and s[k - 1] != "\\":
                quote = not quote
            elif not quote and c == "{":
                depth += 1
            elif not quote and c == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        if k >= len(s):
            return
        yield j, k + 1, s[j + 2 : k]
        i = k + 1


def _is_bare_expression(s: str) -> bool:
    if not (s.startswith("${") and s.endswith("}")):
        return False
    spans = list(_interpolations(s))
    return len(spans) == 1 and spans[0][0] == 0 and spans[0][1] == len(s)


def source_text(raw) -> str:
    """The HCL source of a serialized value (as python-hcl2 8 renders it)."""
    if isinstance(raw, str) and _is_bare_expression(raw):
        return raw[2:-1]
    return str(raw)


_REF = re.compile(r"""^(?P<root>[A-Za-z_][\w-]*)(?P<path>(?:\.[A-Za-z_][\w-]*|\[\s*(?:"[^"]*"|\d+)\s*\])*)$""")
_STEP = re.compile(r"""\.([A-Za-z_][\w-]*)|\[\s*(?:"([^"]*)"|(\d+))\s*\]""")


@dataclass
class Scope:
    """Names visible while evaluating: each.*, and dynamic-block iterators."""

    bindings: dict[str, dict] = field(default_factory=dict)  # name -> {"key":..., "value":...}

    def child(self, name: str, key, value) -> Scope:
        b = dict(self.bindings)
        b[name] = {"key": key, "value": value}
        return Scope(b)


class TerraformModule:
    """All `*.tf` files of one directory: their locals, variables and blocks."""

    def __init__(self, root: Path, directory: Path):
        self.root = root
        self.dir = directory
        self.files: dict[str, dict] = {}
        self.locals: dict[str, tuple[object, str]] = {}  # name -> (raw, relative file)
        self.variables: dict[str, tuple[object, str]] = {}  # name -> (default raw, relative file)
        if not directory.is_dir():
            raise FileNotFoundError(directory)
        for path in sorted(directory.glob("*.tf")):
            rel = self.rel(path)
            doc = parse_hcl(path)
            self.files[rel] = doc
            for block in doc.get("locals", []):
                for k, v in block.items():
                    if not _is_meta(k):
                        self.locals[k] = (v, rel)
            for block in doc.get("variable", []):
                for name, body in block.items():
                    if isinstance(body, dict) and "default" in body:
                        self.variables[_unquote_key(name)] = (body["default"], rel)
        # Terragrunt passes its `inputs` as TF_VAR_<name>, which beat a variable's default: the value
        # terraform applies (stacks/payslip-ingest/terragrunt.hcl:20-24 @3148d15d pins image_tag =
        # "4f70681d" over main.tf's default "latest"). Only the stack's own terragrunt.hcl: the root one
        # has no inputs there; its `required_var_files` (config.tfvars, git-crypt'ed) is not read.
        self.inputs: dict[str, tuple[object, str]] = {}  # name -> (raw, relative terragrunt.hcl)
        terragrunt = directory / "terragrunt.hcl"
        if terragrunt.is_file():
            inputs = parse_hcl(terragrunt).get("inputs")
            for name, raw in (inputs.items() if isinstance(inputs, dict) else []):
                if not _is_meta(name):
                    self.inputs[_unquote_key(name)] = (raw, self.rel(terragrunt))
        self.locator = Locator(root)

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    # -- evaluation --------------------------------------------------------
    def evaluate(self, raw, scope: Scope, origins: list[Origin], depth: int = 0):
        """A Python value (str, list, dict, number) for a serialized HCL value; Unresolved where unknown."""
        if depth > 20:
            return Unresolved("${...}")
        if isinstance(raw, dict):
            return {_unquote_key(k): self.evaluate(v, scope, origins, depth + 1) for k, v in raw.items() if not _is_meta(k)}
        if isinstance(raw, list):
            return [self.evaluate(v, scope, origins, depth + 1) for v in raw]
        if not isinstance(raw, str):
            return raw
        if _is_bare_expression(raw):
            return self._expression(raw[2:-1].strip(), scope, origins, depth)
        if len(raw) >= 2 and raw[0] == '"' and raw[-1] == '"':
            return self._template(raw[1:-1], scope, origins, depth)
        return raw

    def _template(self, body: str, scope: Scope, origins: list[Origin], depth: int) -> str:
        out, last = [], 0
        for start, end, inner in _interpolations(body):
            out.append(body[last:start])
            v = self._expression(inner.strip(), scope, origins, depth + 1)
            out.append(v if isinstance(v, str) and not isinstance(v, Unresolved) else
                       (v if isinstance(v, Unresolved) else str(v)))
            last = end
        out.append(body[last:])
        return "".join(out).replace("$${", "${")

    def _expression(self, expr: str, scope: Scope, origins: list[Origin], depth: int):
        m = _REF.match(expr)
        if not m:
            return Unresolved("${" + expr + "}")
        root = m.group("root")
        steps = [a or b or (int(c) if c else None) for a, b, c in _STEP.findall(m.group("path"))]
        if root in ("local", "var") and steps and isinstance(steps[0], str):
            name, rest = steps[0], steps[1:]
            if root == "var" and name in self.inputs:
                raw, rel = self.inputs[name]
                origins.append(Origin(f"var.{name} terragrunt input", rel, self.locator.attribute_line(rel, name, raw)))
                return _walk(self.evaluate(raw, Scope(), origins, depth + 1), rest, expr)
            table = self.locals if root == "local" else self.variables
            if name not in table:
                return Unresolved("${" + expr + "}")
            raw, rel = table[name]
            kind = f"local.{name}" if root == "local" else f"var.{name} default"
            origins.append(Origin(kind, rel, self.locator.definition_line(rel, name, raw, is_variable=root == "var")))
            value = self.evaluate(raw, Scope(), origins, depth + 1)
            return _walk(value, rest, expr)
        if root in scope.bindings and steps and steps[0] in ("key", "value"):
            return _walk(scope.bindings[root][steps[0]], steps[1:], expr)
        return Unresolved("${" + expr + "}")

    def for_each_items(self, raw, scope: Scope, origins: list[Origin]) -> list[tuple[object, object]]:
        v = self.evaluate(raw, scope, origins)
        if isinstance(v, dict):
            return list(v.items())
        if isinstance(v, list):
            return [(x if isinstance(x, str) else i, x) for i, x in enumerate(v)]
        return [(Unresolved("${each.key}"), Unresolved("${each.value}"))]

    # -- images ------------------------------------------------------------
    def images(self) -> list[ImageRef]:
        refs: list[ImageRef] = []
        for rel, doc in self.files.items():
            self.locator.reset(rel)
            for btype in ("resource", "data", "module"):
                for block in doc.get(btype, []):
                    for label, body in block.items():
                        if btype == "module":
                            self._walk_block(rel, f"module.{_unquote_key(label)}", body, Scope(), refs)
                            continue
                        for name, inner in body.items() if isinstance(body, dict) else []:
                            if _is_meta(name):
                                continue
                            self._walk_block(rel, f"{_unquote_key(label)}.{_unquote_key(name)}", inner, Scope(), refs)
        return refs

    def _walk_block(self, rel: str, path: str, body, scope: Scope, refs: list[ImageRef]) -> None:
        if isinstance(body, list):
            for item in body:
                self._walk_block(rel, path, item, scope, refs)
            return
        if not isinstance(body, dict):
            return
        if "for_each" in body and not path.endswith("dynamic"):
            scopes = [scope.child("each", k, v) for k, v in self.for_each_items(body["for_each"], scope, [])]
        else:
            scopes = [scope]
        for k, v in body.items():
            if _is_meta(k) or k == "for_each":
                continue
            if k == "dynamic" and isinstance(v, list):
                for dyn in v:
                    for label, dbody in dyn.items():
                        if _is_meta(label) or not isinstance(dbody, dict):
                            continue
                        it = _unquote_key(dbody.get("iterator", label)) if isinstance(dbody.get("iterator", label), str) else label
                        it = source_text(it) if isinstance(it, str) else _unquote_key(label)
                        for sc in scopes:
                            for key, val in self.for_each_items(dbody.get("for_each", "${[]}"), sc, []):
                                self._walk_block(rel, f"{path} > dynamic {_unquote_key(label)}",
                                                 dbody.get("content", []), sc.child(_unquote_key(it), key, val), refs)
                continue
            if k == "image" and isinstance(v, str):
                line = self.locator.attribute_line(rel, "image", v)
                for sc in scopes:
                    origins: list[Origin] = []
                    value = self.evaluate(v, sc, origins)
                    if "each" in sc.bindings and "each." in v:
                        origins.append(Origin(f"for_each item {sc.bindings['each']['key']!s}", rel,
                                              self.locator.literal_line(rel, sc.bindings["each"]["value"])))
                    refs.append(ImageRef(str(value), rel, line, source_text(v), path, tuple(origins)))
                continue
            if isinstance(v, (dict, list)) and _has_blocks(v):
                for sc in scopes:
                    self._walk_block(rel, f"{path} > {k}", v, sc, refs)


def _has_blocks(v) -> bool:
    if isinstance(v, dict):
        return v.get("__is_block__", False) or any(_has_blocks(x) for x in v.values() if isinstance(x, (dict, list)))
    if isinstance(v, list):
        return any(_has_blocks(x) for x in v)
    return False


def _walk(value, steps: list, expr: str):
    for s in steps:
        if isinstance(value, dict) and isinstance(s, str) and s in value:
            value = value[s]
        elif isinstance(value, list) and isinstance(s, int) and s < len(value):
            value = value[s]
        else:
            return Unresolved("${" + expr + "}")
    return value


class Locator:
    """Finds the line of an attribute or literal in a file's text (python-hcl2 has no positions)."""

    def __init__(self, root: Path):
        self.root = root
        self._lines: dict[str, list[str]] = {}
        self._seen: dict[tuple[str, str], int] = {}

    def lines(self, rel: str) -> list[str]:
        if rel not in self._lines:
            self._lines[rel] = (self.root / rel).read_text(encoding="utf-8").splitlines()
        return self._lines[rel]

    def reset(self, rel: str) -> None:
        for key in [k for k in self._seen if k[0] == rel]:
            del self._seen[key]

    def attribute_line(self, rel: str, name: str, raw) -> int:
        """Line of the n-th `name = <source>` in document order (n = how often asked before)."""
        src = source_text(raw)
        pat = re.compile(r"^\s*" + re.escape(name) + r"\s*=\s*" + re.escape(src) + r"\s*(?:#.*|//.*)?$")
        hits = [i + 1 for i, line in enumerate(self.lines(rel)) if pat.match(line)]
        n = self._seen.get((rel, name + "=" + src), 0)
        self._seen[(rel, name + "=" + src)] = n + 1
        if hits:
            return hits[min(n, len(hits) - 1)]
        return self.literal_line(rel, src)

    def definition_line(self, rel: str, name: str, raw, *, is_variable: bool) -> int:
        lines = self.lines(rel)
        if is_variable:
            pat = re.compile(r'^\s*variable\s+"' + re.escape(name) + r'"')
            for i, line in enumerate(lines):
                if pat.match(line):
                    for j in range(i, min(i + 40, len(lines))):
                        if re.match(r"^\s*default\s*=", lines[j]) or re.search(r"\bdefault\s*=", lines[j]):
                            return j + 1
                    return i + 1
            return 0
        first = source_text(raw).splitlines()[0] if isinstance(raw, str) and source_text(raw) else ""
        pat = re.compile(r"^\s*" + re.escape(name) + r"\s*=\s*" + re.escape(first))
        for i, line in enumerate(lines):
            if pat.match(line):
                return i + 1
        pat = re.compile(r"^\s*" + re.escape(name) + r"\s*=")
        return next((i + 1 for i, line in enumerate(lines) if pat.match(line)), 0)

    def literal_line(self, rel: str, text) -> int:
        text = str(text)
        if not text:
            return 0
        for i, line in enumerate(self.lines(rel)):
            if text in line:
                return i + 1
        return 0

    def lines_containing(self, rel: str, text: str, *, skip_comments: bool = True) -> list[int]:
        out = []
        for i, line in enumerate(self.lines(rel)):
            if text in line and not (skip_comments and re.match(r"^\s*(#|//)", line)):
                out.append(i + 1)
        return out


def image_host(image: str) -> str:
    """The registry host of an image reference (`docker.io` when none is written)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def image_repository(image: str) -> str:
    """Repository path without host, tag or digest: `viktor/payslip-ingest`."""
    rest = image.split("/", 1)[1] if image_host(image) != "docker.io" or image.startswith("docker.io/") else image
    rest = rest.split("@", 1)[0]
    if ":" in rest.rsplit("/", 1)[-1]:
        rest = rest.rsplit(":", 1)[0]
    return rest


# --------------------------------------------------------------------------
# The checkout and its gates
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One thing wrong, with its place: `file:line`."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class InfraCheckout:
    """A checkout of the infra repository, read through the inventory's [infra_repo] section."""

    def __init__(self, root: Path | str, *, old_hosts: list[str], old_names: list[str], new_host: str, owner: str):
        self.root = Path(root)
        self.old_hosts = [h for h in old_hosts if h]  # registry-private's host and aliases
        self.old_names = [n for n in old_names if n]  # e.g. the container name `registry-private`
        self.new_host = new_host
        self.owner = owner
        self.locator = Locator(self.root)
        if not self.root.is_dir():
            raise Broken(f"infra checkout {self.root} is not a directory (inventory infra_repo.path)")

    @classmethod
    def from_inventory(cls, inv) -> InfraCheckout:
        spec = inv.infra_repo
        path = Path(spec.path)
        if not path.is_absolute() and inv.source:
            path = Path(inv.source).resolve().parent / path
        pr = inv.private_registry
        old_hosts = [pr.host, *pr.aliases]
        return cls(path, old_hosts=old_hosts, old_names=[pr.container], new_host=inv.forgejo.host, owner=inv.forgejo.owner)

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.root.resolve()))
        except ValueError:
            return str(path)

    def absent(self, rel: str, what: str) -> Broken:
        """A file a gate must read is not there: the gate cannot judge (never a pass, never a defect)."""
        outside = self.is_outside(rel)
        where = (f"outside the infra checkout {self.root} (the monorepo around it is not part of the infra "
                 "repository: check it out beside it)" if outside else f"in the infra checkout {self.root}")
        return Broken(f"{rel} ({what}) is not there to read, {where}: the gate cannot judge "
                      "(a wrong inventory path, or a checkout without the file)")

    def is_outside(self, rel: str) -> bool:
        return not (self.root / rel).resolve().is_relative_to(self.root.resolve())

    def is_old_host(self, host: str) -> bool:
        return host in self.old_hosts  # the inventory lists every name:port the old registry answers on

    # -- Phase 3 -----------------------------------------------------------
    def stack_images(self, stack_file: str) -> list[ImageRef]:
        path = self.root / stack_file
        if not path.is_file():
            raise FileNotFoundError(stack_file)
        return TerraformModule(self.root, path.parent).images()

    def stack_findings(self, stack_file: str, expected: list[str]) -> tuple[list[ImageRef], list[Finding]]:
        """Images of the stack's directory; findings for any on registry-private or an expected one not on Forgejo."""
        try:
            refs = self.stack_images(stack_file)
        except FileNotFoundError:
            raise self.absent(stack_file, "stack file") from None
        findings = []
        for r in refs:
            host = image_host(r.value)
            if self.is_old_host(host):
                findings.append(Finding(r.where, f"resolves to {r.value} (registry-private)"))
        for name in expected:
            want = f"{self.new_host}/{self.owner}/{name}"
            if not any(image_repository(r.value) == f"{self.owner}/{name}" and image_host(r.value) == self.new_host for r in refs):
                seen = sorted({r.value for r in refs if image_repository(r.value).rsplit("/", 1)[-1] == name}) or ["no image of that name"]
                findings.append(Finding(stack_file, f"no image resolves to {want}:<tag>; seen {', '.join(seen)}"))
        return refs, findings

    def yaml_images(self, rel: str) -> list[tuple[str, int]]:
        """(value, line) of every `image:` key in a YAML file (steps, clone, services)."""
        return [(v, line) for k, v, line in self._yaml_scalars(rel) if k == "image"]

    def _yaml_scalars(self, rel: str) -> list[tuple[str, str, int]]:
        path = self.root / rel
        try:
            node = yaml.compose(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except yaml.YAMLError as e:
            raise Broken(f"{rel}: not valid YAML: {str(e).splitlines()[0]}") from None
        out: list[tuple[str, str, int]] = []

        def walk(n, key=""):
            if isinstance(n, yaml.MappingNode):
                for k, v in n.value:
                    walk(v, k.value if isinstance(k, yaml.ScalarNode) else "")
            elif isinstance(n, yaml.SequenceNode):
                for v in n.value:
                    walk(v, key)
            elif isinstance(n, yaml.ScalarNode):
                out.append((key, n.value, n.start_mark.line + 1))

        if node is not None:
            walk(node)
        return out

    def pipeline_findings(self, files: list[str], image_name: str) -> tuple[list[str], list[Finding]]:
        """Every `image:` naming `image_name` in these pipelines must be `<forgejo>/<owner>/<image_name>`."""
        findings: list[Finding] = []
        uses: list[str] = []
        want = f"{self.owner}/{image_name}"
        for rel in files:
            try:
                images = self.yaml_images(rel)
            except FileNotFoundError:
                raise self.absent(rel, "pipeline file") from None
            for value, line in images:
                if image_repository(value).rsplit("/", 1)[-1] != image_name:
                    continue
                if image_host(value) == self.new_host and image_repository(value) == want:
                    uses.append(f"{rel}:{line}")
                else:
                    findings.append(Finding(f"{rel}:{line}", f"image: {value} (expected {self.new_host}/{want}:<tag>)"))
        if not uses and not findings:
            findings.append(Finding(", ".join(files), f"no step uses the {image_name} image at all"))
        return uses, findings

    def text_findings(self, rel: str, *, must_contain: str, must_not_contain: str) -> list[Finding]:
        path = self.root / rel
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise self.absent(rel, "file to read") from None
        findings = [Finding(f"{rel}:{i + 1}", f"still says {must_not_contain!r}: {line.strip()[:160]}")
                    for i, line in enumerate(lines) if must_not_contain and must_not_contain in line]
        if not any(must_contain in line for line in lines):
            findings.append(Finding(rel, f"does not name {must_contain!r}"))
        return findings

    # -- Phase 4 -----------------------------------------------------------
    def cloud_init_findings(self, rel: str) -> list[Finding]:
        """Lines of the cloud-init template (inside HCL string values) that write hosts.toml for an old host."""
        path = self.root / rel
        if not path.is_file():
            raise self.absent(rel, "cloud-init template")
        doc = parse_hcl(path)
        strings = "\n".join(_all_strings(doc))
        findings = []
        lines = self.locator.lines(rel)
        for host in self.old_hosts:
            patterns = [f"certs.d/{host}", f'host."https://{host}"', f'host."http://{host}"', f'server = "https://{host}"']
            for i, line in enumerate(lines):
                if re.match(r"^\s*(#|//)", line):
                    continue
                if any(p in line for p in patterns) and any(p in strings for p in patterns):
                    findings.append(Finding(f"{rel}:{i + 1}", f"writes a hosts.toml entry for {host}: {line.strip()[:140]}"))
        return sorted(set(findings), key=lambda f: (f.where.rsplit(":", 1)[0], int(f.where.rsplit(":", 1)[1])))

    def dockerconfig_auths(self, rel: str, secret_name: str) -> list[tuple[str, int]]:
        """The `auths` keys of the dockerconfigjson Secret `secret_name` in a Terraform file, with lines."""
        path = self.root / rel
        if not path.is_file():
            raise FileNotFoundError(rel)
        doc = parse_hcl(path)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                if _unquote_key(rtype) not in ("kubernetes_secret", "kubernetes_secret_v1"):
                    continue
                for _, body in named.items():
                    if not isinstance(body, dict):
                        continue
                    meta = (body.get("metadata") or [{}])[0]
                    if _unquote_key(str(meta.get("name", ""))) != secret_name:
                        continue
                    data = body.get("data", {})
                    if isinstance(data, list):
                        data = data[0] if data else {}
                    for k, v in data.items():
                        if _unquote_key(k) == ".dockerconfigjson":
                            keys = _jsonencode_auths(v, rel)
                            lines = self.locator.lines(rel)
                            out = []
                            for key in keys:
                                pat = re.compile(r'^\s*"' + re.escape(key) + r'"\s*=')
                                out.append((key, next((i + 1 for i, ln in enumerate(lines) if pat.match(ln)), 0)))
                            return out
        raise LookupError(f"{rel}: no kubernetes_secret named {secret_name!r} with a .dockerconfigjson")

    def cronjob_findings(self, module_dir: str, cronjob_name: str) -> list[Finding]:
        """Terraform CronJobs named `cronjob_name` in a module directory (the old probe must be gone)."""
        directory = self.root / module_dir
        if not directory.is_dir():
            raise self.absent(module_dir, "monitoring module directory")
        files = sorted(directory.glob("*.tf"))
        if not files:
            raise Broken(f"{module_dir} holds no .tf file: where the CronJobs are defined cannot be read")
        findings = []
        for path in files:
            rel = self.rel(path)
            doc = parse_hcl(path)
            for block in doc.get("resource", []):
                for rtype, named in block.items():
                    if "cron_job" not in _unquote_key(rtype):
                        continue
                    for rname, body in named.items():
                        meta = (body.get("metadata") or [{}])[0] if isinstance(body, dict) else {}
                        if _unquote_key(str(meta.get("name", ""))) == cronjob_name:
                            pat = re.compile(r'^\s*resource\s+"' + re.escape(_unquote_key(rtype)) + r'"\s+"' + re.escape(_unquote_key(rname)) + '"')
                            line = next((i + 1 for i, ln in enumerate(self.locator.lines(rel)) if pat.match(ln)), 0)
                            findings.append(Finding(f"{rel}:{line}", f"CronJob {cronjob_name} is still defined ({_unquote_key(rtype)}.{_unquote_key(rname)})"))
        return findings

    # -- Phase 5 -----------------------------------------------------------
    def doc_findings(self, doc, spec) -> tuple[bool, list[Finding]]:
        """(exists, findings) of a Phase 5 document: what it must no longer say, and what it must now say.

        Must no longer say, outside history: registry-private's hosts and names, the deleted probe
        (`spec.old_probe_cronjob`), the inventory's stale phrases, and links to a replaced runbook
        (cross-references must point at its replacement). Must now say: every `must_mention` (under
        `section`), and for a runbook its procedure (`procedure_min_steps` numbered steps or commands).
        """
        rel = doc.path
        path = self.root / rel
        if not path.is_file():
            if doc.replaced_by:
                return False, []
            if self.is_outside(rel):
                raise self.absent(rel, "document")
            return False, [Finding(rel, "document does not exist")]
        md = MarkdownDoc(path.read_text(encoding="utf-8"))
        if doc.replaced_by:
            if not md.banner(markers=[]) or Path(doc.replaced_by).name not in md.preamble():
                return True, [Finding(f"{rel}:1", f"replaced document has no superseded banner naming {Path(doc.replaced_by).name}")]
            return True, []
        terms = [Term(t, f"describes {t} as current") for t in self.old_hosts + self.old_names]
        if spec.old_probe_cronjob:
            terms.append(Term(spec.old_probe_cronjob, f"presents the deleted probe {spec.old_probe_cronjob} as live"))
        terms += [Term(p, f"still calls it {p!r}", fold=True) for p in spec.stale_phrases]
        for other in spec.docs:
            if other.replaced_by and other.path != rel:
                old_name, new_name = Path(other.path).name, Path(other.replaced_by).name
                terms.append(Term(old_name, f"points at the replaced runbook {old_name} (now {new_name})"))
        terms.sort(key=lambda t: -len(t.text))  # the most specific name first (host:port before host)
        findings = [Finding(f"{rel}:{line}", f"{term.reason}: {sentence[:160]}")
                    for line, term, sentence in md.current_mentions(terms, headings=spec.historical_headings,
                                                                     markers=spec.historical_markers)]
        for want in (w.replace("$forgejo_host", self.new_host) for w in doc.must_mention):
            if not md.says_now(want, section=doc.section, headings=spec.historical_headings, markers=spec.historical_markers):
                where = f" under a heading containing {doc.section!r}" if doc.section else ""
                findings.append(Finding(rel, f"does not say {want!r}{where} in a current statement"
                                             + ("" if not doc.section or md.has_section(doc.section)
                                                else f" (no such section: headings are {', '.join(md.headings()[:8])})")))
        if doc.procedure:
            steps = md.procedure_steps(spec.historical_headings)
            if steps < spec.procedure_min_steps:
                findings.append(Finding(rel, f"holds no procedure: {steps} numbered step(s) or command line(s), "
                                             f"at least {spec.procedure_min_steps} expected ({doc.update})"))
        return True, findings


def _is_ip(host: str) -> bool:
    return bool(re.match(r"^\d+\.\d+\.\d+\.\d+(:\d+)?$", host))


def _all_strings(v) -> Iterator[str]:
    if isinstance(v, dict):
        for x in v.values():
            yield from _all_strings(x)
    elif isinstance(v, list):
        for x in v:
            yield from _all_strings(x)
    elif isinstance(v, str):
        yield v


def _jsonencode_auths(raw, rel: str) -> list[str]:
    """Keys of `auths` in `jsonencode({auths = {...}})` (python-hcl2 renders call arguments as text)."""
    expr = source_text(raw).strip()
    m = re.match(r"^jsonencode\((.*)\)$", expr, re.S)
    if not m:
        raise Broken(f"{rel}: .dockerconfigjson is not a jsonencode({{...}}) expression")
    try:
        obj = hcl2.loads(f"v = {m.group(1)}\n", serialization_options=_HCL_OPTIONS)["v"]
    except Exception:
        raise Broken(f"{rel}: cannot parse the dockerconfigjson object") from None
    if isinstance(obj, list):
        obj = obj[0]
    auths = obj.get("auths", {}) if isinstance(obj, dict) else {}
    return [_unquote_key(k) for k in auths if not _is_meta(k)]


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------

_BANNER = re.compile(r"(?i)\b(superseded|replaced by|deprecated|archived|historical)\b")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z`*\[(])")


class MarkdownDoc:
    """Just enough Markdown: headings, fenced code, blocks (paragraph, list item, table row), sentences."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def preamble(self) -> str:
        out = []
        for line in self.lines:
            if re.match(r"^##\s", line):
                break
            out.append(line)
        return "\n".join(out)

    def banner(self, markers: list[str]) -> bool:
        return any(_BANNER.search(line) for line in self.preamble().splitlines() if not line.startswith("# "))

    def units(self) -> Iterator[tuple[int, str, list[str], bool]]:
        """(first line, text, heading chain, in code) for each block."""
        chain: list[tuple[int, str]] = []
        fence: str | None = None
        unit: list[str] = []  # the block being gathered, from line unit_line
        unit_line = 0
        in_code = False

        def flush() -> Iterator[tuple[int, str, list[str], bool]]:
            nonlocal unit, unit_line
            if unit:
                yield unit_line, " ".join(x.strip() for x in unit), [h for _, h in chain], in_code
            unit, unit_line = [], 0

        for i, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            if fence:
                if stripped.startswith(fence):
                    yield from flush()
                    fence, in_code = None, False
                    continue
                yield i, line, [h for _, h in chain], True
                continue
            m = re.match(r"^(`{3,}|~{3,})", stripped)
            if m:
                yield from flush()
                fence, in_code = m.group(1), True
                continue
            h = re.match(r"^(#{1,6})\s+(.*)$", line)
            if h:
                yield from flush()
                level = len(h.group(1))
                chain = [(lv, t) for lv, t in chain if lv < level] + [(level, h.group(2))]
                continue
            if not stripped:
                yield from flush()
                continue
            starts_block = bool(re.match(r"^\s*([-*+]\s|\d+[.)]\s|\|)", line))
            if starts_block:
                yield from flush()
            if not unit:
                unit_line = i
            unit.append(line)
            if stripped.startswith("|"):
                yield from flush()
        yield from flush()

    def statements(self, *, headings: list[str], markers: list[str]) -> Iterator[tuple[int, str, list[str], bool, bool, bool]]:
        """(first line, sentence, heading chain, in code, historical, in a historical part) per sentence.

        Historical by structure: the document carries a superseded banner; the sentence sits under a
        historical heading; it reports a dated event (an ISO date) or cites a post-mortem, plan or ADR;
        or it carries one of the inventory's markers ("migrated from", "decommissioned", ...).
        """
        whole_doc = self.banner(markers)
        for line, text, chain, in_code in self.units():
            under_history = whole_doc or any(any(w.lower() in h.lower() for w in headings) for h in chain)
            for s in ([text] if in_code else _SENTENCE_SPLIT.split(text)):
                historical = under_history or (not in_code and (
                    _DATED.search(s) is not None or _CITES_HISTORY.search(s) is not None
                    or any(_marker_in(m, s) for m in markers)))
                yield line, s.strip(), chain, in_code, historical, under_history

    def current_mentions(self, terms: list[Term], *, headings: list[str], markers: list[str]) -> list[tuple[int, Term, str]]:
        out = []
        seen_units: set[int] = set()
        for line, s, _chain, _code, historical, _part in self.statements(headings=headings, markers=markers):
            if historical or line in seen_units:
                continue
            term = next((t for t in terms if t.found_in(s)), None)
            if term is not None:
                seen_units.add(line)
                out.append((self._line_of(term, line), term, s))
        return out

    def says_now(self, text: str, *, section: str, headings: list[str], markers: list[str]) -> bool:
        """`text` stated outside the document's historical parts (a dated current fact counts)."""
        return any(text in s and not part and (not section or any(section.lower() in h.lower() for h in chain))
                   for _line, s, chain, _code, _hist, part in self.statements(headings=headings, markers=markers))

    def headings(self) -> list[str]:
        return [m.group(2) for m in (re.match(r"^(#{1,6})\s+(.*)$", ln) for ln in self.lines) if m]

    def has_section(self, section: str) -> bool:
        return any(section.lower() in h.lower() for h in self.headings())

    def procedure_steps(self, headings: list[str]) -> int:
        """Numbered steps and command lines outside historical sections: what a runbook asks one to do."""
        n = 0
        for _line, text, chain, in_code in self.units():
            if any(any(w.lower() in h.lower() for w in headings) for h in chain):
                continue
            if in_code:
                n += bool(text.strip()) and not text.strip().startswith("#")
            elif re.match(r"^\s*\d+[.)]\s+\S", text):
                n += 1
        return n

    def _line_of(self, term: Term, start: int) -> int:
        for i in range(start - 1, len(self.lines)):
            if term.found_in(self.lines[i]):
                return i + 1
        return start


# an event with its date ("migrated ... 2026-05-07"); "since <date>" starts a state that still holds
_DATED = re.compile(r"(?<!since )\b20\d\d-[01]\d-[0-3]\d\b", re.IGNORECASE)
_CITES_HISTORY = re.compile(r"(?i)\bpost-mortems?/|\bdocs/plans/|\bdocs/adr/|\badr/\d")


@dataclass(frozen=True)
class Term:
    """A name a current statement must not use, and how a finding says so."""

    text: str
    reason: str
    fold: bool = False  # match case-insensitively (phrases)

    def found_in(self, s: str) -> bool:
        # whole names only: registry-rebuild-image.md is not inside forgejo-registry-rebuild-image.md
        return re.search(r"(?<![\w.-])" + re.escape(self.text) + r"(?![\w-])", s,
                         re.IGNORECASE if self.fold else 0) is not None


def _marker_in(marker: str, sentence: str) -> bool:
    return re.search(r"(?i)\b" + re.escape(marker.strip()) + r"\b", sentence) is not None


# --------------------------------------------------------------------------
# Gates: one function per scenario, each ends in a verdict
# --------------------------------------------------------------------------


def _fail(expected: str, findings: list[Finding]) -> None:
    from phasegate.verdict import GateFailed

    if findings:
        raise GateFailed(expected=expected,
                         seen="\n  " + "\n  ".join(str(f) for f in findings),
                         where=", ".join(f.where.split(" ")[0] for f in findings[:6]) + (" ..." if len(findings) > 6 else ""))


def stack_spec(inv, project: str):
    for s in inv.infra_repo.stacks:
        if s.project == project:
            return s
    raise Broken(f"inventory: no [[infra_repo.stacks]] row for project {project!r}")


def gate_stack_on_forgejo(co: InfraCheckout, spec) -> list[ImageRef]:
    refs, findings = co.stack_findings(spec.path, spec.images)
    _fail(f"every image of {spec.path} resolved off registry-private, and "
          + ", ".join(f"{co.new_host}/{co.owner}/{i}:<tag>" for i in spec.images) + " among them", findings)
    return refs


def gate_infra_ci_pipelines(co: InfraCheckout, files: list[str], image: str) -> list[str]:
    uses, findings = co.pipeline_findings(files, image)
    _fail(f"every {image} step image in {', '.join(files)} is {co.new_host}/{co.owner}/{image}:<tag>", findings)
    return uses


def gate_claude_md(co: InfraCheckout, rel: str, url: str, old: str) -> None:
    _fail(f"{rel} installs claude-memory-mcp with `claude plugins install {url}`",
          co.text_findings(rel, must_contain=url, must_not_contain=old))


def gate_cloud_init(co: InfraCheckout, rel: str) -> None:
    _fail(f"the cloud-init template {rel} writes no hosts.toml for {', '.join(co.old_hosts)}", co.cloud_init_findings(rel))


def gate_registry_credentials(co: InfraCheckout, rel: str, secret: str) -> list[str]:
    from phasegate.verdict import GateFailed

    try:
        auths = co.dockerconfig_auths(rel, secret)
    except FileNotFoundError:
        raise co.absent(rel, "registry-credentials Terraform") from None
    except LookupError as e:
        raise GateFailed(expected=f"{rel} defines Secret {secret} with a .dockerconfigjson", seen=str(e), where=rel) from None
    keys = [k for k, _ in auths]
    if keys != [co.new_host]:
        extra = [Finding(f"{rel}:{line}", f"auths entry {k!r}") for k, line in auths if k != co.new_host]
        if co.new_host not in keys:
            extra.append(Finding(rel, f"no auths entry for {co.new_host}"))
        _fail(f"Secret {secret} has exactly one auths entry, {co.new_host} (seen: {', '.join(keys) or 'none'})", extra)
    return keys


def gate_old_probe_gone(co: InfraCheckout, module_dir: str, name: str) -> None:
    _fail(f"no CronJob {name} in {module_dir}", co.cronjob_findings(module_dir, name))


def gate_doc(co: InfraCheckout, doc, spec) -> None:
    exists, findings = co.doc_findings(doc, spec)
    what = (f"{doc.path} is gone or marked superseded by {doc.replaced_by}" if doc.replaced_by
            else f"{doc.path} exists, mentions registry-private only as history and says what it must now say "
                 f"({doc.update})")
    _fail(what, findings)


def gate_doc_named(co: InfraCheckout, spec, path: str) -> None:
    """`gate_doc` for the [[infra_repo.docs]] row of `path` (as the Phase 5 Examples table names it)."""
    row = next((d for d in spec.docs if d.path == path), None)
    if row is None:
        raise Broken(f"inventory: no [[infra_repo.docs]] row for {path!r}")
    gate_doc(co, row, spec)


# -- the history of one declared value (the bake's DRY_RUN cross-check) ------------------------------


@dataclass(frozen=True)
class Declared:
    """A value as a commit of the infra repository declared it."""

    t: float  # committer time, unix seconds
    commit: str
    value: str


def declared_history(root: Path | str, rel: str, name: str, *, timeout: float = 30.0) -> list[Declared]:
    """Every change of `name = <value>` (an HCL local or attribute) in `rel` over the checkout's git
    history, oldest first; [] when the checkout has no git history (a plain copy, the lab's)."""
    import subprocess

    root = Path(root)
    if not (root / ".git").exists():
        return []
    pattern = re.compile(rf"^\s*{re.escape(name)}\s*=\s*(\S+)", re.M)
    try:
        log = subprocess.run(["git", "-C", str(root), "log", "--format=%H %ct", "--", rel],
                             capture_output=True, text=True, timeout=timeout, check=True).stdout.split("\n")
        out: list[Declared] = []
        for line in reversed([x for x in log if x.strip()]):
            sha, ct = line.split()
            text = subprocess.run(["git", "-C", str(root), "show", f"{sha}:{rel}"], capture_output=True,
                                  text=True, timeout=timeout).stdout
            m = pattern.search(text)
            if m and (not out or out[-1].value != m.group(1)):
                out.append(Declared(float(ct), sha[:8], m.group(1)))
        return out
    except (subprocess.SubprocessError, OSError, ValueError) as e:
        raise Broken(f"git history of {rel} in {root}: {type(e).__name__}") from None

# --------------------------------------------------------------------------
# Plan items checked in the infra repository (issue 15.7)
# --------------------------------------------------------------------------

# topolvm's pvc-autoresizer annotation for the cap (stacks/forgejo/main.tf:33-35 @5d22b449)
AUTORESIZE_LIMIT = "resize.topolvm.io/storage_limit"
AUTORESIZE_THRESHOLD = "resize.topolvm.io/threshold"


def _resources(co: InfraCheckout, rel: str, kind: str) -> list[tuple[str, str, dict, int]]:
    """(type, name, body, line) of every resource whose type contains `kind` in one Terraform file."""
    path = co.root / rel
    if not path.is_file():
        raise co.absent(rel, "Terraform file")
    out = []
    for block in parse_hcl(path).get("resource", []):
        for rtype, named in block.items():
            if kind not in _unquote_key(rtype):
                continue
            for rname, body in named.items():
                if isinstance(body, dict):
                    pat = re.compile(r'^\s*resource\s+"' + re.escape(_unquote_key(rtype)) + r'"\s+"'
                                     + re.escape(_unquote_key(rname)) + '"')
                    line = next((i + 1 for i, ln in enumerate(co.locator.lines(rel)) if pat.match(ln)), 0)
                    out.append((_unquote_key(rtype), _unquote_key(rname), body, line))
    return out


def _meta(body: dict) -> dict:
    meta = body.get("metadata") or [{}]
    return meta[0] if isinstance(meta, list) and meta else (meta if isinstance(meta, dict) else {})


def gate_pvc_autoresize_cap(co: InfraCheckout, rel: str, pvc_name: str, cap: str) -> list[str]:
    """The Forgejo PVC carries pvc-autoresizer annotations with `storage_limit` = cap (the plan: cap 50Gi)."""
    pvcs = _resources(co, rel, "persistent_volume_claim")
    named = [p for p in pvcs if _unquote_key(str(_meta(p[2]).get("name", ""))) == pvc_name]
    judged = named or pvcs
    if not judged:
        _fail(f"a PersistentVolumeClaim in {rel} autoresizing up to {cap}", [Finding(rel, "no PersistentVolumeClaim")])
    findings, seen = [], []
    for _rtype, rname, body, line in judged:
        name = _unquote_key(str(_meta(body).get("name", rname)))
        ann = {_unquote_key(k): _unquote_key(str(v)) for k, v in (_meta(body).get("annotations") or {}).items()}
        limit, threshold = ann.get(AUTORESIZE_LIMIT), ann.get(AUTORESIZE_THRESHOLD)
        seen.append(f"{name}: {AUTORESIZE_LIMIT}={limit}")
        if limit != cap:
            findings.append(Finding(f"{rel}:{line}", f"PVC {name}: {AUTORESIZE_LIMIT} = {limit or '(none)'}, not {cap}"))
        if threshold is None:
            findings.append(Finding(f"{rel}:{line}", f"PVC {name}: no {AUTORESIZE_THRESHOLD} (never resized)"))
    _fail(f"the Forgejo PVC ({pvc_name} in {rel}) autoresizes up to {cap}", findings)
    return seen


def gate_cronjob_schedule(co: InfraCheckout, module_dir: str, name: str, schedule: str) -> str:
    directory = co.root / module_dir
    if not directory.is_dir():
        raise co.absent(module_dir, "module directory")
    found = []
    for path in sorted(directory.glob("*.tf")):
        rel = co.rel(path)
        for _rtype, _rname, body, line in _resources(co, rel, "cron_job"):
            if _unquote_key(str(_meta(body).get("name", ""))) == name:
                spec = body.get("spec") or [{}]
                spec = spec[0] if isinstance(spec, list) and spec else {}
                found.append((f"{rel}:{line}", _unquote_key(str(spec.get("schedule", "")))))
    if not found:
        _fail(f"a CronJob {name} with schedule {schedule!r} in {module_dir}",
              [Finding(module_dir, f"no CronJob named {name}")])
    _fail(f"CronJob {name} runs on {schedule!r}",
          [Finding(where, f"schedule = {s!r}") for where, s in found if s != schedule])
    return found[0][0]


def hosts_toml_writes(text: str, host: str) -> list[tuple[int, dict | None, str]]:
    """(line, parsed hosts.toml or None, error) of every hosts.toml body for `host` a script or template writes.

    The body is a single-quoted shell string (printf '...' in cloud-init, HOSTS_TOML='...' in the mirror
    script, MIR:21-26 and INF:89-90 @5d22b449) holding `server = "https://<host>"`; printf's \\n are newlines.
    """
    import tomllib

    out: list[tuple[int, dict | None, str]] = []
    for m in re.finditer(r"'([^']*server\s*=\s*\"https://" + re.escape(host) + r"\"[^']*)'", text):
        body = m.group(1).replace("\\n", "\n")
        line = text.count("\n", 0, m.start()) + 1
        try:
            out.append((line, tomllib.loads(body), ""))
        except tomllib.TOMLDecodeError as e:
            out.append((line, None, str(e)))
    return out


def gate_writes_forgejo_hosts_toml(co: InfraCheckout, files: list[str], host: str, mirrors: list[str]) -> None:
    """Each file writes certs.d/<host>/hosts.toml: server https://<host>, a mirror host with pull+resolve."""
    findings = []
    for rel in files:
        path = co.root / rel
        if not path.is_file():
            raise co.absent(rel, "file that writes the node's hosts.toml")
        text = path.read_text(encoding="utf-8")
        if f"certs.d/{host}" not in text:
            findings.append(Finding(rel, f"writes nothing under certs.d/{host}/"))
            continue
        bodies = hosts_toml_writes(text, host)
        if not bodies:
            findings.append(Finding(rel, f"no hosts.toml body with server = \"https://{host}\""))
        for line, doc, err in bodies:
            if doc is None:
                findings.append(Finding(f"{rel}:{line}", f"hosts.toml body is not valid TOML ({err})"))
                continue
            hosts = doc.get("host") or {}
            good = [m for m in mirrors if isinstance(hosts.get(m), dict)
                    and {"pull", "resolve"} <= set(hosts[m].get("capabilities") or [])]
            if not good:
                findings.append(Finding(f"{rel}:{line}", f"hosts.toml names mirror(s) {sorted(hosts) or 'none'}, "
                                                         f"none of {mirrors} with capabilities pull+resolve"))
    _fail(f"{', '.join(files)} each write certs.d/{host}/hosts.toml (server https://{host}, "
          f"mirror {' or '.join(mirrors)} for pull and resolve)", findings)


def gate_compose_template_without(co: InfraCheckout, rel: str, container: str) -> None:
    """The VM's compose template (cloud-init writes it to the VM) has no active service running `container`."""
    from phasegate import decommission

    path = co.root / rel
    if not path.is_file():
        raise co.absent(rel, "the registry VM's compose template")
    services = decommission.compose_services(path.read_text(encoding="utf-8"), where=rel)
    service = decommission.service_for_container(services, container)
    if service is not None:
        line = next((i + 1 for i, ln in enumerate(co.locator.lines(rel)) if re.match(rf"^\s*{re.escape(service)}:", ln)), 0)
        _fail(f"no active service in {rel} runs {container} (a new VM would start it again)",
              [Finding(f"{rel}:{line}", f"service {service!r} still defines {container}")])
