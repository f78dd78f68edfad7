"""Lab component `report`: what the lab's report links to.

No process: the lab's inventory must name loopback or `.test` hosts only, so the
plan link of every gate points at an unresolvable `.test` host in the lab (the real
inventory links the plan in the infra repo on Forgejo).
"""

from __future__ import annotations

PLAN_URL = "http://plan.lab.test/viktor/infra/src/branch/master/docs/plans/2026-05-07-forgejo-registry-consolidation-plan.md"


class ReportLab:
    name = "report"

    def start(self, lab) -> None:
        pass

    def stop(self) -> None:
        pass

    def inventory(self) -> dict:
        return {"report": {"plan_url": PLAN_URL}}

    def env(self) -> dict:
        return {}
