"""The bake clock cross-check (issue 15.9): the typed last dual-push date against the observed starts."""

from __future__ import annotations

import datetime as dt

import pytest

from phasegate import bake_clock
from phasegate.verdict import GateFailed

UTC = dt.UTC
STARTS = {"payslip-ingest": dt.datetime(2026, 5, 7, 16, 0, tzinfo=UTC),
          "wealthfolio-sync": dt.datetime(2026, 5, 18, 9, 30, tzinfo=UTC)}


def test_a_date_typed_before_the_last_start_is_red():
    with pytest.raises(GateFailed) as e:
        bake_clock.cross_check(dt.date(2026, 5, 15), STARTS, "inventory")
    assert "on or after 2026-05-18" in str(e.value) and "3 day(s) early" in str(e.value)
    assert "wealthfolio-sync" in str(e.value)


def test_the_observed_date_or_later_holds():
    assert bake_clock.cross_check(dt.date(2026, 5, 18), STARTS, "inventory").last_project == "wealthfolio-sync"
    assert "2026-05-18" in bake_clock.cross_check(dt.date(2026, 5, 20), STARTS, "inventory").render()
