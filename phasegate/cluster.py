"""Phase 0 and Phase 4 gates on the cluster's own objects, read through the Kubernetes API (phasegate.kube).

- Forgejo's objects: the Deployment's container (memory request and limit, the packages environment), the
  PVC (requested and provisioned size), the ingress (a Traefik Buffering middleware that lets a registry
  push's request bodies through);
- the pull secret Kyverno clones into a fresh namespace: exactly the auths keys of the migration's
  registries, matched as kubelet's keyring matches them (phasegate.cri), each entry's credentials accepted
  by its registry (a `/v2/` login with them, phasegate.oci).

Every judge receives its client (a `Kube`, or the object a given step read with it) and the inventory's
section; thresholds arrive as the scenario text says them (checked against the inventory by
`Inventory.said`).
"""

from __future__ import annotations

from phasegate import config
from phasegate.pullsecret import PullSecret, auths_registries, expected_auths_keys, registry_url
from phasegate.units import quantity, size_bytes
from phasegate.verdict import AuthError, GateFailed, check

# -- Forgejo's objects ------------------------------------------------------------------------------------


def forgejo_deployment(kube, f: config.Forgejo):
    d = kube.deployment(f.namespace, f.deployment)
    check(d is not None, expected=f"Deployment {f.deployment}", seen="no such Deployment",
          where=f"namespace {f.namespace}")
    return d


def _forgejo_container(d, f: config.Forgejo):
    for c in d.spec.template.spec.containers:
        if c.name == f.container:
            return c
    raise GateFailed(expected=f"container {f.container}",
                     seen=f"containers {[c.name for c in d.spec.template.spec.containers]}",
                     where=f"Deployment {f.namespace}/{f.deployment}")


def judge_memory(d, f: config.Forgejo, want: str) -> None:
    """Forgejo's container requests and is limited to at least `want` of memory."""
    c = _forgejo_container(d, f)
    res = c.resources
    req = (res.requests or {}).get("memory") if res else None
    lim = (res.limits or {}).get("memory") if res else None
    ok = req is not None and lim is not None and quantity(req) >= quantity(want) and quantity(lim) >= quantity(want)
    check(ok, expected=f"memory request and limit >= {want}", seen=f"request {req or 'unset'}, limit {lim or 'unset'}",
          where=f"Deployment {f.namespace}/{f.deployment} container {c.name}")


def judge_env(d, f: config.Forgejo, want: dict[str, str]) -> None:
    """Forgejo's container sets every variable of `want` to its value."""
    c = _forgejo_container(d, f)
    env = {e.name: e.value for e in c.env or []}
    wrong = {k: env.get(k, "<unset>") for k, v in want.items() if env.get(k) != v}
    check(not wrong, expected=", ".join(f"{k}={v}" for k, v in want.items()),
          seen=", ".join(f"{k}={v}" for k, v in wrong.items()),
          where=f"Deployment {f.namespace}/{f.deployment} container {c.name}")


def forgejo_pvc(kube, namespace: str, name: str):
    pvc = kube.pvc(namespace, name)
    check(pvc is not None, expected=f"PersistentVolumeClaim {name}", seen="no such PVC", where=f"namespace {namespace}")
    return pvc


def judge_pvc_size(pvc, want: str) -> None:
    """The PVC requests and has (status capacity) at least `want`."""
    req = (pvc.spec.resources.requests or {}).get("storage")
    cap = ((pvc.status.capacity if pvc.status else None) or {}).get("storage")
    ok = req is not None and cap is not None and quantity(req) >= quantity(want) and quantity(cap) >= quantity(want)
    check(ok, expected=f"storage request and capacity >= {want}", seen=f"request {req or 'unset'}, capacity {cap or 'unset'}",
          where=f"PVC {pvc.metadata.namespace}/{pvc.metadata.name}")


def forgejo_ingress(kube, namespace: str, name: str):
    ing = kube.ingress(namespace, name)
    check(ing is not None, expected=f"Ingress {name}", seen="no such Ingress", where=f"namespace {namespace}")
    return ing


def judge_ingress_buffering(ingress, kube, max_body: str) -> None:
    """The ingress's router carries a Traefik Buffering middleware whose maxRequestBodyBytes is at least
    `max_body` (a body size as Traefik and nginx write it, "5g")."""
    where = f"Ingress {ingress.metadata.namespace}/{ingress.metadata.name}"
    want = size_bytes(max_body)
    refs = (ingress.metadata.annotations or {}).get("traefik.ingress.kubernetes.io/router.middlewares", "")
    seen = []
    by_ref = kube.middlewares_by_ref()  # Traefik names a CRD middleware <namespace>-<name>@kubernetescrd
    for ref in filter(None, (r.strip() for r in refs.split(","))):
        mw = by_ref.get(ref.split("@", 1)[0])
        if mw is None:
            seen.append(f"{ref}: no such middleware")
            continue
        limit = ((mw.get("spec") or {}).get("buffering") or {}).get("maxRequestBodyBytes")
        if limit is None:
            continue  # another middleware (retry, error pages, rate limit, ...)
        if int(limit) >= want:
            return
        seen.append(f"{ref}: maxRequestBodyBytes {limit}")
    raise GateFailed(expected=f"a Buffering middleware with maxRequestBodyBytes >= {want} ({max_body})",
                     seen="; ".join(seen) or "no middleware on the ingress (router.middlewares annotation unset)",
                     where=where)


# -- a fresh namespace and the pull secret cloned into it ---------------------------------------------------


def fresh_namespace(kube, at_teardown) -> str:
    """A namespace with the suite's prefix and label; its removal registered (`at_teardown(fn, what)`) before
    it exists, a crashed run's leftovers swept first."""
    name = kube.fresh_name("ns")
    at_teardown(lambda: kube.delete_namespace(name), f"namespace {name}")
    kube.sweep()
    kube.create_namespace(name)
    return name


def cloned_pull_secret(kube, namespace: str, c: config.Cluster) -> PullSecret:
    """The pull secret Kyverno clones into `namespace`, waited for up to the inventory's wait timeout."""
    sec = kube.wait_for_secret(namespace, c.credentials_secret)
    check(sec is not None, expected=f"Secret {c.credentials_secret} cloned from {c.credentials_namespace}",
          seen=f"no such Secret after {c.wait_timeout:.0f}s", where=f"namespace {namespace}")
    return PullSecret.from_v1(sec)


def judge_auths_keys(pull_secret: PullSecret, inv, registries: str) -> None:
    """Exactly the auths keys of `registries` ("Forgejo" | "Forgejo and registry-private"), keys matched to
    registries as kubelet's keyring matches them (phasegate.cri: `https://host/v2/` is host)."""
    seen = pull_secret.keys()
    missing, extra = auths_registries(seen, inv, registries)
    want = ", ".join(expected_auths_keys(inv, registries))
    check(not missing and not extra, expected=f"auths entries for exactly {registries} ({want}), keys matched as "
                                              "kubelet's keyring matches them",
          seen=f"{len(seen)} auths entries: {', '.join(seen)}"
               + (f"; no entry for {', '.join(missing)}" if missing else "")
               + (f"; not of {registries}: {', '.join(extra)}" if extra else ""), where=pull_secret.where())


def judge_auths_authenticate(pull_secret: PullSecret, inv, settings) -> None:
    """Every auths entry's credentials are accepted by the registry its key names (a `/v2/` login)."""
    from phasegate.oci import RegistryClient

    failures = []
    for key, (user, password) in sorted(pull_secret.auths.items()):
        url, ca = registry_url(inv, key)
        try:
            with RegistryClient(url, username=user, password=password, ca_bundle=ca, settings=settings) as client:
                client.ping()
        except AuthError as e:
            failures.append(f"{key} as {user!r}: {e}")
    check(not failures, expected="every auths entry's credentials accepted by its registry",
          seen="; ".join(failures), where=pull_secret.where())
