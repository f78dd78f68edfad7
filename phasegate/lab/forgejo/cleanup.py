"""Lab component `forgejo_cleanup`: the retention CronJob's pods run the cleanup script for real.

The real `forgejo-cleanup` CronJob (infra-facts.md §5) runs `/bin/sh /scripts/cleanup.sh` in
`alpine:3.20`, the script mounted from the ConfigMap `forgejo-cleanup-script` that Terraform fills
with `file("${path.module}/files/cleanup.sh")` (stacks/forgejo/cleanup.tf @ e0452611). In the lab the
infra checkout holds that file (`CLEANUP_SH`, written for the lab with the real script's steps, jq
programs and log lines: stacks/forgejo/files/cleanup.sh @ e0452611), and a Job of the CronJob runs
it as a host process: BusyBox `sh` (alpine's shell: it has the `<(...)` the script uses, which dash
lacks), Debian's curl and jq (scripts/setup.sh), an `apk` that has nothing left to install, the
pod's resolved env, and the lab CA for the stand-in's TLS. So the gate judges what the script
itself prints, against the Forgejo stand-in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CLEANUP_PATH = "stacks/forgejo/files/cleanup.sh"  # in the infra checkout
SCRIPT_TIMEOUT = 120.0

# The lab's stacks/forgejo/files/cleanup.sh: the real script's behaviour at e0452611 (the 06-09
# `cache` rule included): page the owner's container versions (limit=50 until an empty page),
# per name `sort_by(.created_at) | reverse`, keep the first KEEP_LAST_N + `latest` + versions
# matching test("cache"; "i"), delete the rest (or log them under DRY_RUN).
CLEANUP_SH = r'''#!/bin/sh
# Forgejo container-package retention (lab copy; behaviour of the real script at e0452611).
set -eu

apk add --no-cache curl jq >/dev/null

OWNER="${FORGEJO_OWNER}"
KEEP="${KEEP_LAST_N:-10}"
DRY="${DRY_RUN:-true}"
BASE="${FORGEJO_HOST%/}/api/v1"
AUTH_HEADER="Authorization: token $FORGEJO_TOKEN"

echo "Forgejo cleanup: owner=$OWNER keep_last=$KEEP dry_run=$DRY"
echo "API base: $BASE"

TMPDIR=$(mktemp -d)
trap 'rm -rf "$TMPDIR"' EXIT
ALL="$TMPDIR/all.json"
echo "[]" > "$ALL"

PAGE=1
while :; do
  RESP=$(curl -sf -H "$AUTH_HEADER" "$BASE/packages/$OWNER?type=container&limit=50&page=$PAGE")
  COUNT=$(echo "$RESP" | jq 'length')
  if [ "$COUNT" = "0" ]; then break; fi
  jq -s '.[0] + .[1]' "$ALL" <(echo "$RESP") > "$TMPDIR/merged.json"
  mv "$TMPDIR/merged.json" "$ALL"
  PAGE=$((PAGE + 1))
  if [ "$PAGE" -gt 100 ]; then break; fi
done

TOTAL=$(jq 'length' "$ALL")
echo "Found $TOTAL package version(s)."
if [ "$TOTAL" = "0" ]; then
  echo "Nothing to do."
  exit 0
fi

NAMES=$(jq -r '.[].name' "$ALL" | sort -u)
DEL=0
KEPT=0
for NAME in $NAMES; do
  jq --arg n "$NAME" '[.[] | select(.name == $n)] | sort_by(.created_at) | reverse' "$ALL" > "$TMPDIR/$NAME.json"
  N_VERSIONS=$(jq 'length' "$TMPDIR/$NAME.json")
  echo "[$NAME] $N_VERSIONS version(s)"
  jq -r --argjson keep "$KEEP" '
    [.[0:$keep][].version]
    + [.[] | select(.version == "latest") | .version]
    + [.[] | select(.version | test("cache"; "i")) | .version]
    | unique | .[]' "$TMPDIR/$NAME.json" > "$TMPDIR/$NAME.keep"
  jq -r '.[].version' "$TMPDIR/$NAME.json" | grep -vxFf "$TMPDIR/$NAME.keep" > "$TMPDIR/$NAME.delete" || true
  D_COUNT=$(wc -l < "$TMPDIR/$NAME.delete" | tr -d ' ')
  K_COUNT=$(wc -l < "$TMPDIR/$NAME.keep" | tr -d ' ')
  echo "  keep=$K_COUNT delete=$D_COUNT"
  KEPT=$((KEPT + K_COUNT))
  while IFS= read -r VER; do
    [ -z "$VER" ] && continue
    URL="$BASE/packages/$OWNER/container/$NAME/$VER"
    if [ "$DRY" = "true" ]; then
      echo "  DRY_RUN would DELETE $URL"
    else
      HTTP=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "$AUTH_HEADER" "$URL" || echo "000")
      if [ "$HTTP" = "204" ] || [ "$HTTP" = "200" ]; then
        echo "  deleted $NAME:$VER"
      else
        echo "  FAIL $NAME:$VER HTTP $HTTP"
      fi
    fi
    DEL=$((DEL + 1))
  done < "$TMPDIR/$NAME.delete"
done

echo "Summary: kept=$KEPT to_delete=$DEL dry_run=$DRY"
'''


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
