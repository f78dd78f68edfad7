"""The lab's inventory names only loopback hosts, and Lab.write() refuses one that does not."""

from __future__ import annotations

import tomllib

import pytest

from phasegate import config
from phasegate.lab.core import Lab, non_loopback
from phasegate.lab.procs import LabError


def test_the_real_inventory_is_flagged_host_by_host():
    bad = non_loopback(tomllib.loads(config.DEFAULT_INVENTORY.read_text()))
    joined = "\n".join(bad)
    assert "forgejo.url" in joined and "private_registry.host" in joined
    assert "10.0.20.10:5050" in joined


@pytest.mark.parametrize("value", [
    {"forgejo": {"url": "https://forgejo.viktorbarzin.me"}},
    {"x": {"host": "registry.viktorbarzin.me"}},
    {"x": {"aliases": ["127.0.0.1:5000", "10.0.20.10:5050"]}},
    {"prometheus": {"query_url": "http://10.0.20.5:9090/api/v1"}},
    {"nodes": [{"name": "k8s-node1", "hosts_toml": 'server = "https://forgejo.viktorbarzin.me"'}]},
    {"x": {"address": "192.168.1.10"}},
])
def test_non_loopback_values_are_found(value):
    assert non_loopback(value)


def test_loopback_and_test_names_pass():
    assert non_loopback({
        "forgejo": {"url": "https://127.0.0.1:4443", "host": "127.0.0.1:4443", "ca_bundle": "/tmp/lab/tls/ca.pem"},
        "private_registry": {"aliases": ["localhost:5000", "registry.lab.test:5050", "[::1]:5000"]},
        "prometheus": {"url": "http://127.0.0.2:9090"},
        "secrets": {"x": {"description": "PAT in Vault secret/ci/global", "env": "X"}},
        "alerts": {"instance": "forgejo.viktorbarzin.me"},  # a label value, not a place to connect to
    }) == []


def test_lab_write_refuses_an_inventory_with_a_real_host(tmp_path):
    # without components the default (real) hosts would be written: refused
    with pytest.raises(LabError, match="non-loopback"):
        Lab(tmp_path / "lab", components=[]).up()
    assert not (tmp_path / "lab" / "inventory.toml").exists()


@pytest.mark.lab
def test_the_session_lab_inventory_is_loopback_only_and_names_forgejo(lab):
    inv = tomllib.loads(lab.inventory_path.read_text())
    assert non_loopback(inv) == []
    f = lab["registries"].forgejo
    assert inv["forgejo"]["url"] == f.url and inv["forgejo"]["host"] == f.netloc
    env = lab.env()
    for var in ("PHASEGATE_FORGEJO_PUSH_TOKEN", "PHASEGATE_FORGEJO_PULL_TOKEN", "PHASEGATE_FORGEJO_CLEANUP_TOKEN"):
        assert env[var].startswith("pgcanary")
    assert inv["timeouts"]["read"] <= 5


def test_a_lab_running_past_midnight_writes_its_inventory_again_with_the_new_days_verify_weekday(monkeypatch):
    """The lab's weekly full verify is due "today" (MetricsLab.inventory); at UTC midnight the inventory is
    written again, or a lab started on a Sunday would judge Monday's run by Sunday's weekday (Pending: a CI
    run that crossed midnight once saw the verify fault's gate pending, not red)."""
    import datetime as real_dt
    import threading
    import types

    from phasegate.lab import metrics

    clock = {"now": real_dt.datetime(2026, 12, 6, 23, 59, 59, 500000, tzinfo=real_dt.UTC)}  # a Sunday

    class Clock(real_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return clock["now"]

    monkeypatch.setattr(metrics, "dt", types.SimpleNamespace(datetime=Clock, UTC=real_dt.UTC, time=real_dt.time,
                                                             timedelta=real_dt.timedelta, date=real_dt.date))
    m = metrics.MetricsLab()
    m.names = types.SimpleNamespace(forgejo_instance="127.0.0.1:1", private_instance="127.0.0.1:2",
                                    healthz_instance="https://127.0.0.1:1/api/healthz")
    written = threading.Event()
    weekdays: list[str] = []

    class WrittenLab:
        started = True

        def write(self):
            weekdays.append(m.inventory()["bake"]["full_verify_weekday"])
            written.set()

    m._lab = WrittenLab()
    assert m.inventory()["bake"]["full_verify_weekday"] == "Sunday"
    waiting = threading.Thread(target=m._each_midnight, daemon=True)
    waiting.start()
    clock["now"] = real_dt.datetime(2026, 12, 7, 0, 0, 1, tzinfo=real_dt.UTC)  # the wait (1.5 s) runs past midnight
    try:
        assert written.wait(30), "the inventory was not written again after midnight"
        assert weekdays == ["Monday"]
    finally:
        m._stopped.set()
        waiting.join(30)
    assert not waiting.is_alive(), "the midnight writer did not stop with the lab"
