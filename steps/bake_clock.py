"""The bake clock's hand-typed last dual-push date against what Forgejo shows (thin: phasegate.bake_clock)."""

from __future__ import annotations

from pytest_bdd import then

from phasegate import bake_clock


@then("the inventory's last dual-push date is not before the last project started dual-pushing")
def last_dual_push_observed(inventory, http_settings):
    from phasegate.forgejo import Forgejo
    from phasegate.report import attach_text

    with Forgejo.from_inventory(inventory, http_settings, user="puller") as api:
        starts = bake_clock.observed_starts(inventory, api)
    check = bake_clock.cross_check(inventory.bake.last_dual_push, starts,
                                   where=f"inventory [bake] last_dual_push against {inventory.forgejo.url} packages of "
                                         f"{inventory.forgejo.owner}")
    attach_text("bake clock", check.render())
