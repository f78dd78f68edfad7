"""Lab component `forgejo_cleanup`: the retention CronJob's pods run the cleanup script for real.

The real `forgejo-cleanup` CronJob (infra-facts.md §5) runs `/bin/sh /scripts/cleanup.sh` in
`alpine:3.20`, the script mounted from the ConfigMap `forgejo-cleanup-script` that Terraform fills
with `file("${path.module}/files/cleanup.sh")` (stacks/forgejo/cleanup.tf @ e0452611). In the lab the
infra checkout holds that file (phasegate/lab/infra_checkout/templates/checkout/infra/stacks/forgejo/files/
cleanup.sh, written for the lab with the real script's steps, jq programs and log lines:
stacks/forgejo/files/cleanup.sh @ e0452611; the 06-09 `cache` rule included: it pages the owner's
container versions (limit=50 until an empty page), per name `sort_by(.created_at) | reverse`, keeps
the first KEEP_LAST_N + `latest` + versions matching test("cache"; "i"), deletes the rest or logs them
under DRY_RUN), and a Job of the CronJob runs it as a host process: BusyBox `sh` (alpine's shell: it
has the `<(...)` the script uses, which dash lacks), Debian's curl and jq (scripts/setup.sh), an `apk` that has nothing left to install, the
pod's resolved env, and the lab CA for the stand-in's TLS. So the gate judges what the script
itself prints, against the Forgejo stand-in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CLEANUP_PATH = "stacks/forgejo/files/cleanup.sh"  # in the infra checkout
SCRIPT_TIMEOUT = 120.0


class ForgejoCleanupJob:
    name = "forgejo_cleanup"

    def __init__(self):
        self._lab = None
        self.bin: Path | None = None

    def start(self, lab) -> None:
        self._lab = lab
        self.bin = lab.dir / "forgejo-cleanup" / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        apk = self.bin / "apk"  # alpine's package tool: curl and jq are already on the lab's PATH
        apk.write_text("#!/bin/sh\nexit 0\n")
        apk.chmod(0o755)
        if "cluster" in lab:
            from phasegate import config

            r = config.Retention()
            lab["cluster"].api.register_runner(r.namespace, r.cronjob, self.run)

    def stop(self) -> None:
        pass

    def inventory(self) -> dict:
        return {}

    def env(self) -> dict:
        return {}

    def script(self) -> Path:
        return self._lab["infra_checkout"].infra / CLEANUP_PATH

    def run(self, ctx) -> tuple[int, str]:
        """A pod of the CronJob: `/bin/sh /scripts/cleanup.sh` with the pod's env, as a host process."""
        busybox = shutil.which("busybox")
        if busybox is None:
            return 127, "/bin/sh: busybox not installed in the lab (scripts/setup.sh installs it)\n"
        env = {k: v for k, v in ctx.env.items()}
        env.update(PATH=f"{self.bin}:/usr/local/bin:/usr/bin:/bin", HOME=str(self.bin.parent),
                   CURL_CA_BUNDLE=str(self._lab.ca.bundle), LC_ALL="C")
        try:
            p = subprocess.run([busybox, "sh", str(self.script())], env=env, capture_output=True, text=True,
                               timeout=SCRIPT_TIMEOUT, cwd=str(self.bin.parent))
        except subprocess.TimeoutExpired as e:
            return 137, (e.stdout or "") + "killed: the script ran past the lab's timeout\n"
        return p.returncode, p.stdout + p.stderr
