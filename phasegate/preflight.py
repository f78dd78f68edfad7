"""Cutover pre-flight (issue 16.3): every image the flipped stack will pull is on Forgejo, same digest, intact.

The real migration copied only `:latest` to Forgejo while the stacks pin SHA tags
(scripts/forgejo-migrate-orphan-images.sh:39-48 @c2f8a300): a flip would have pulled tags Forgejo never
had. Before a project's cutover (and for all of them before Phase 3), each image reference its stack
resolves to (the HCL as phasegate.infra_repo resolves it: locals, variable defaults, for_each, dynamic
blocks) is mapped to what it is after the flip, `<forgejo host>/<owner>/<name>:<tag>`, and to the same
reference on registry-private, `<private host>/<name>:<tag>`. Forgejo must serve it, with the digest
registry-private serves for the same reference (the bytes the pods run today), and pass the integrity
check. A stack already flipped is judged the same way (its references are Forgejo's already).
"""

from __future__ import annotations

from dataclasses import dataclass

from phasegate import integrity
from phasegate.infra_repo import InfraCheckout, image_host, image_repository
from phasegate.oci import RegistryClient
from phasegate.verdict import GateFailed


@dataclass(frozen=True)
class Flip:
    name: str  # image name (last path component)
    tag: str
    where: str  # file:line of the stack's image attribute
    forgejo_repo: str  # owner/name
    private_repo: str  # name (registry-private keeps no owner)

    @property
    def label(self) -> str:
        return f"{self.name}:{self.tag}"


def _tag(value: str) -> str:
    last = value.rsplit("/", 1)[-1].split("@", 1)[0]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def flips(co: InfraCheckout, stack_file: str, images: list[str]) -> tuple[list[Flip], list[str]]:
    """(the stack's references to the project's images, mapped; unresolvable ones as lines)."""
    out, unresolved = [], []
    for ref in co.stack_images(stack_file) if (co.root / stack_file).is_file() else []:
        name = image_repository(ref.value).rsplit("/", 1)[-1]
        if name not in images or not (co.is_old_host(image_host(ref.value)) or image_host(ref.value) == co.new_host):
            continue
        if "${" in ref.value:
            unresolved.append(f"{ref.where}: {ref.value} (not resolvable from the HCL)")
            continue
        out.append(Flip(name, _tag(ref.value), ref.where.split(" ")[0], f"{co.owner}/{name}", name))
    if not (co.root / stack_file).is_file():
        raise co.absent(stack_file, "stack file")
    return out, unresolved


def check(co: InfraCheckout, stack_file: str, images: list[str], forgejo: RegistryClient,
          private: RegistryClient) -> list[str]:
    """Raises GateFailed naming every reference that would not pull the same intact image from Forgejo."""
    refs, problems = flips(co, stack_file, images)
    if not refs and not problems:
        problems.append(f"{stack_file}: no image of {', '.join(images)} on either registry (nothing to flip)")
    seen: dict[tuple[str, str], str] = {}
    ok: list[str] = []
    for f in refs:
        if (f.name, f.tag) in seen:
            continue
        fj = forgejo.head_manifest(f.forgejo_repo, f.tag)
        pv = private.head_manifest(f.private_repo, f.tag)
        if fj.status == 404:
            problem = f"{f.where}: {co.new_host}/{f.forgejo_repo}:{f.tag} is not on Forgejo" + (
                f" (registry-private serves {pv.digest})" if pv.status == 200 else " (nor on registry-private)")
        elif pv.status == 404:
            problem = ""  # registry-private no longer has it (after Phase 4): Forgejo's copy is judged alone
        elif fj.digest != pv.digest:
            problem = (f"{f.where}: {f.label}: Forgejo serves {fj.digest}, registry-private {pv.digest} "
                       "(the flip would change what the pods run)")
        else:
            problem = ""
        if not problem:
            broken = integrity.check_image(forgejo, f.forgejo_repo, f.tag).broken
            if broken:
                problem = f"{f.where}: {f.label} on Forgejo is broken: " + "; ".join(b.line() for b in broken[:5])
        seen[(f.name, f.tag)] = problem
        (problems if problem else ok).append(problem or f"{f.label} {fj.digest}")
    if problems:
        raise GateFailed(expected=f"every image {stack_file} pulls after the flip on Forgejo "
                                  f"({co.new_host}/{co.owner}/...), with registry-private's digest, intact",
                         seen="\n  " + "\n  ".join(problems), where=stack_file,
                         evidence="ready: " + (", ".join(ok) or "none"))
    return ok
