"""A Kubernetes API stand-in: the REST subset the gates use, over HTTPS, for the official client.

No kube-apiserver can run on these machines, so the lab serves the wire
protocol itself: JSON objects under `/api/v1` and `/apis/<group>/<version>`,
list/get/create/patch/delete with label and field selectors, bearer-token
auth, `pods/<name>/log`, and real `Status` errors (404 NotFound, 409
AlreadyExists, 422 Invalid, 401 Unauthorized, 403 Forbidden). Objects are
kept as the API serves them and validate against the official OpenAPI
schemas (tests/test_kube_standin.py checks every stored object).

Controllers run inside the stand-in:
- Kyverno's clone rule: a new namespace (unless excluded) receives a copy of
  the source Secret (`kyverno/registry-credentials`);
- a kubelet per node (`phasegate.lab.nodes.ContainerdNode`): pulls each
  container's image through that node's real containerd with the pod's
  `imagePullSecrets` credentials, honours `imagePullPolicy`, and reports
  `containerStatuses` (`imageID`, or `ErrImagePull`/`ImagePullBackOff` with
  containerd's message). A container whose command is `cat FILE...` prints
  those files from its hostPath volumes, `ls -1A DIR...` lists directories
  (how the suite reads node files: phasegate.lab.nodes `busybox_ls`);
- the deployment controller (ReplicaSets per pod template, surge rollout,
  status with observedGeneration/updated/ready/available replicas);
- the job controller: a Job runs one pod; a Job owned by a CronJob updates
  the CronJob's status and history limits.

Lab hooks other areas use (see README "Cluster lab"):
- `register_runner(namespace, cronjob, fn)`: a pod of a Job of that CronJob
  (scheduled or `create job --from=cronjob/...`) runs `fn(RunContext)` after its
  image was pulled; `fn` returns `(exit_code, log)`. Without a runner a job
  container succeeds with an empty log.
- `put(obj)` / `get(...)` / `mutate(...)` / `delete(...)`: direct store access for
  seeding and faults (controllers fire as for API writes).
- `seed_job(cronjob_ns, cronjob, name, log=..., succeeded=..., finished=...)`: job history.

Split by resource (tests/test_lab_imports.py pins what each module may import):

| module | what it serves or knows |
|---|---|
| `objects` | the resources served (RESOURCES), `Status` errors, patches, selectors, owner references, image references |
| `store` | the object store: get/list/put/mutate/delete, defaults, status writes, deletion's cascade |
| `controllers` | the controller manager: the work queue its writes feed, `wait_idle()` |
| `namespaces` | namespaces' `default` service account, Kyverno's clone rule, asynchronous namespace deletion |
| `admission` | RBAC denials and pod admission (namespace terminating, service account, PodSecurity): the 403s |
| `pods` | the scheduler and the kubelets (pulls through real containerd, statuses, events, back-off, runners) |
| `workloads` | the deployment controller (ReplicaSets, rollout, Progressing deadline); no StatefulSets or DaemonSets |
| `jobs` | the job controller, CronJob status and history, `seed_job()` |
| `router` | `KubeStandin` (one mixin per area above) and its API: paths, verbs, create, patch, `/status`, `log`; `kubeconfig()` |
"""

from phasegate.lab.kube.objects import KINDS, RESOURCES, ApiError, now, rfc3339
from phasegate.lab.kube.pods import RunContext, Runner
from phasegate.lab.kube.router import ApiRequest, KubeStandin, kubeconfig

__all__ = ["KINDS", "RESOURCES", "ApiError", "ApiRequest", "KubeStandin", "RunContext", "Runner", "kubeconfig", "now",
           "rfc3339"]
