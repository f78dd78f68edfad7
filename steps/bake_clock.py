"""The bake clock's hand-typed last dual-push date against what Forgejo shows (thin: phasegate.bake_clock)."""

from __future__ import annotations

from pytest_bdd import then

from phasegate import bake_clock


@then("the inventory's last dual-push date is not before the last project started dual-pushing")
def last_dual_push_observed(inventory, forgejo_repo_reader):
    bake_clock.judge(inventory, forgejo_repo_reader)
