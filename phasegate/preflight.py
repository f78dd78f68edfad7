"""Cutover pre-flight (issue 16.3): every image the flipped stack will pull is on Forgejo, same digest, intact.

The real migration copied only `:latest` (and novnc's `:v4`) to Forgejo while the stacks pin other
tags (scripts/forgejo-migrate-orphan-images.sh:39-48 @c2f8a300): a flip would have pulled tags
Forgejo never had, claude-agent-service:2fd7670d (stacks/claude-agent-service/main.tf:14 @5d22b449,
stacks/beads-server/main.tf:15-17), beadboard:17a38e43 (stacks/beads-server/main.tf:6-8),
payslip-ingest:4f70681d and job-hunter:92afc38d (their terragrunt.hcl inputs, :23 and :25).

Before a project's cutover (and, since the plan cuts every project over in one session, for all
of them before Phase 3), each image reference its stack resolves to (phasegate.infra_repo:
terragrunt inputs, variable defaults, locals, for_each, dynamic blocks) is mapped to what it is
after the flip, `<forgejo host>/<owner>/<name>:<tag>`, and to the same reference on
registry-private, `<private host>/<name>:<tag>`. Forgejo must serve it, with the digest
registry-private serves for the same reference (the bytes the pods run today), and pass the
integrity check. A stack already flipped (it names Forgejo) is judged as written: the same
reference on both registries. After Phase 4 (registry-private no longer has it) Forgejo's copy is
judged alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from phasegate import integrity
from phasegate.infra_repo import InfraCheckout, image_host, image_repository
from phasegate.oci import Head, RegistryClient
from phasegate.verdict import Broken, GateFailed


@dataclass(frozen=True)
class Flip:
    name: str  # image name (last path component)
    tag: str  # the reference pulled: a tag, or a digest (`name@sha256:...`)
    where: str  # file:line of the stack's image attribute
    forgejo_repo: str  # owner/name
    private_repo: str  # name (registry-private keeps no owner)
    flipped: bool = False  # the stack names Forgejo already (judged as written)

    @property
    def label(self) -> str:
        return f"{self.name}{'@' if self.tag.startswith('sha256:') else ':'}{self.tag}"


def _reference(value: str) -> str:
    """The tag (or digest) an image reference pulls; no tag is `latest`, as containerd pulls it."""
    last = value.rsplit("/", 1)[-1]
    if "@" in last:
        return last.split("@", 1)[1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def flips(co: InfraCheckout, stack_file: str, images: list[str]) -> tuple[list[Flip], list[str]]:
    """(the stack's references to the project's images, mapped; unresolvable ones as lines)."""
    if not (co.root / stack_file).is_file():
        raise co.absent(stack_file, "stack file")
    out, unresolved = [], []
    for ref in co.stack_images(stack_file):
        name = image_repository(ref.value).rsplit("/", 1)[-1]
        host = image_host(ref.value)
        if name not in images or not (co.is_old_host(host) or host == co.new_host):
            continue
        if "${" in ref.value:
            unresolved.append(f"{ref.where}: {ref.value} (not resolvable from the HCL)")
            continue
        out.append(Flip(name, _reference(ref.value), ref.where.split(" ")[0], f"{co.owner}/{name}", name,
                        flipped=host == co.new_host))
    return out, unresolved


def _places(group: list[Flip]) -> str:
    """`stacks/x/main.tf:12, :40` (every line that pulls the reference, each once, file named once; a
    for_each resource pulls it once per item from one line)."""
    out, last_file = [], ""
    for where in dict.fromkeys(f.where for f in group):
        file, _, line = where.rpartition(":")
        out.append(where if file != last_file else f":{line}")
        last_file = file
    return ", ".join(out)


def _line_key(f: Flip) -> tuple[str, int]:
    file, _, line = f.where.rpartition(":")
    return file, int(line) if line.isdigit() else 0


def _digest(client: RegistryClient, repository: str, reference: str, head: Head) -> str:
    """The manifest digest the registry serves; computed from the bytes when it sends no header."""
    if head.digest or head.status != 200:
        return head.digest
    return client.get_manifest(repository, reference).digest


def check(co: InfraCheckout, stack_file: str, images: list[str], forgejo: RegistryClient,
          private: RegistryClient) -> list[str]:
    """Raises GateFailed naming every reference that would not pull the same intact image from Forgejo:
    expected (registry-private's digest), seen (Forgejo's answer), where (every stack file:line)."""
    refs, problems = flips(co, stack_file, images)
    if not refs and not problems:
        problems.append(f"{stack_file}: no image of {', '.join(images)} on either registry (nothing to flip)")
    groups: dict[tuple[str, str], list[Flip]] = {}
    for f in refs:
        groups.setdefault((f.name, f.tag), []).append(f)
    ok: list[str] = []
    places: list[str] = [stack_file] if problems else []
    red: list[Flip] = []
    for group in groups.values():
        f = group[0]
        at = f"{'pulled' if f.flipped else 'pulled after the flip'} at {_places(group)}"
        fj_ref = f"{co.new_host}/{f.forgejo_repo}:{f.tag}".replace(":sha256:", "@sha256:")
        fh = forgejo.head_manifest(f.forgejo_repo, f.tag)
        ph = private.head_manifest(f.private_repo, f.tag)
        fd, pd = _digest(forgejo, f.forgejo_repo, f.tag, fh), _digest(private, f.private_repo, f.tag, ph)
        if fh.status == 404:
            problem = (f"{fj_ref} is not on Forgejo: expected {pd} (registry-private serves it)" if ph.status == 200
                       else f"{fj_ref} is not on Forgejo (nor on registry-private)") + f"; {at}"
        elif ph.status == 200 and fd != pd:
            problem = (f"{f.label}: expected registry-private's {pd}, Forgejo serves {fd} "
                       f"(the flip would change what the pods run); {at}")
        else:  # same digest, or registry-private no longer has it (after Phase 4): Forgejo's copy alone
            broken = integrity.check_image(forgejo, f.forgejo_repo, f.tag).broken
            problem = (f"{fj_ref} ({fd}) on Forgejo is broken: " + "; ".join(b.line() for b in broken[:5])
                       + f"; {at}") if broken else ""
        if problem:
            problems.append(problem)
            red += group
        else:
            ok.append(f"{f.label} {fd}" + ("" if ph.status == 200 else " (not on registry-private: Forgejo alone)"))
    if problems:
        raise GateFailed(expected=f"every image {stack_file} pulls after the flip on Forgejo "
                                  f"({co.new_host}/{co.owner}/...), with registry-private's digest, intact",
                         seen="\n  " + "\n  ".join(problems), where=", ".join([*places, _places(sorted(red, key=_line_key))] if red else places),
                         evidence="ready: " + (", ".join(ok) or "none"))
    return ok


def gate_stack(co: InfraCheckout, spec, forgejo: RegistryClient, private: RegistryClient) -> list[str]:
    """One row of the plan's Phase 3 table ([[infra_repo.stacks]]: path, images), before its flip."""
    return check(co, spec.path, list(spec.images), forgejo, private)


def gate_every_stack(co: InfraCheckout, specs, forgejo: RegistryClient, private: RegistryClient) -> list[str]:
    """Before the Phase 3 session: every row at once, one verdict listing every reference not ready.
    A stack that cannot be judged is listed too; with nothing red it makes the whole verdict Broken."""
    if not specs:
        raise Broken("inventory: no [[infra_repo.stacks]] rows: no stack to pre-flight")
    ready, red, unjudged, where, kinds = [], [], [], [], []
    for spec in specs:
        try:
            ready += [f"{spec.project}: {r}" for r in gate_stack(co, spec, forgejo, private)]
        except GateFailed as e:
            red += [f"{spec.project}: {line.strip()}" for line in e.seen.splitlines() if line.strip()]
            where.append(e.where)
        except Broken as e:
            unjudged.append(f"{spec.project}: could not judge: {e}")
            kinds.append(type(e))
            where.append(spec.path)
    if red:
        raise GateFailed(expected="before Phase 3, every image each cutover stack pulls after its flip on Forgejo "
                                  f"({co.new_host}/{co.owner}/...), with registry-private's digest, intact",
                         seen=f"{len(red)} reference(s) not ready:\n  " + "\n  ".join(red + unjudged),
                         where="; ".join(where), evidence="ready: " + (", ".join(ready) or "none"))
    if unjudged:  # one kind (all unreachable, all timed out) keeps its kind in the verdict
        raise _one_kind(kinds)("; ".join(unjudged))
    return ready


def _one_kind(kinds: list[type]) -> type[Broken]:
    """The verdict class all the unjudged stacks share (its phasegate.verdict class: a client's own
    subclass, e.g. oci.ServerAnswer, takes other arguments), else plain Broken."""
    if len(set(kinds)) != 1:
        return Broken
    return next(k for k in kinds[0].__mro__ if k.__module__ == "phasegate.verdict" and issubclass(k, Broken))
