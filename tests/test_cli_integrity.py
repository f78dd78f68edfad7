"""`phasegate integrity`: exit codes 0/1/2, the JSON contract, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from phasegate.cli import main
from phasegate.lab import seed
from phasegate.lab.procs import free_port

pytestmark = pytest.mark.lab

PASSWORD_ENV = "PHASEGATE_TEST_INTEGRITY_PASSWORD"


@pytest.fixture
def argv(lab, monkeypatch):
    p = lab["registries"].private
    monkeypatch.setenv(PASSWORD_ENV, lab.secret("private_registry_password"))
    return [p.url, "--username", "viktor", "--password-env", PASSWORD_ENV, "--ca-bundle", str(lab.ca.bundle)]


def run(capsys, args):
    code = main(["integrity", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_green_json_contract(capsys, argv):
    code, out, err = run(capsys, argv + ["--json"])
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == ["repositories", "tags", "manifests", "indexes", "blobs", "broken"]
    assert doc["broken"] == [] and doc["tags"] >= seed.expected(seed.plan()).tags
    assert all(isinstance(doc[k], int) for k in list(doc)[:5])


def test_broken_found_exit_1(lab, capsys, argv):
    target = seed.faults()[seed.MISSING_LAYER]
    with lab.fault("private-missing-layer"):
        code, out, err = run(capsys, argv + ["--json", "--concurrency", "3", "--tags-per-repo", "3"])
    assert code == 1, err
    (broken,) = json.loads(out)["broken"]
    assert broken == {"repository": target.repository, "tag": "1", "digest": target.digest, "kind": "layer",
                      "status": 404, "path": broken["path"]}
    assert broken["path"][0] == f"{target.repository}:1" and broken["path"][-1] == target.digest


def test_human_table(lab, capsys, argv):
    with lab.fault("private-bitrot-layer"):
        code, out, err = run(capsys, argv + ["--mode", "verify", "--tags-per-repo", "1"])
    assert code == 1
    assert "digest-mismatch" in out and "integrity-bitrot" in out and "REPOSITORY" in out


def test_bad_password_exit_2_one_line(lab, capsys, argv, monkeypatch):
    wrong = "pgcanary-not-the-password"
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    code, out, err = run(capsys, argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "401" in err and wrong not in err


def test_usage_and_connection_errors_exit_2(capsys, argv, monkeypatch):
    code, _, err = run(capsys, [f"https://127.0.0.1:{free_port()}", "--tags-per-repo", "1"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "connect" in err
    monkeypatch.delenv(PASSWORD_ENV)
    code, _, err = run(capsys, argv)
    assert code == 2 and PASSWORD_ENV in err
    with pytest.raises(SystemExit) as e:
        main(["integrity", argv[0], "--mode", "deep"])
    assert e.value.code == 2


def test_console_script_no_traceback(lab, argv):
    """The real entry point, as other tooling calls it: exit 2, one line, no traceback."""
    p = subprocess.run([sys.executable, "-m", "phasegate.cli", "integrity", argv[0]], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_forgejo_with_a_read_pat(lab, capsys, monkeypatch):
    from phasegate.lab.registries import FORGEJO_PULLER

    monkeypatch.setenv(PASSWORD_ENV, lab.secret("forgejo_pull_token"))
    argv = [lab["registries"].forgejo.url, "--username", FORGEJO_PULLER, "--password-env", PASSWORD_ENV,
            "--ca-bundle", str(lab.ca.bundle), "--json", "--mode", "verify", "--tags-per-repo", "2"]
    target = seed.faults("viktor/")[seed.BITROT_LAYER]
    with lab.fault("forgejo-bitrot-layer"):
        code, out, err = run(capsys, argv)
    assert code == 1, err
    assert [(b["repository"], b["digest"], b["status"]) for b in json.loads(out)["broken"]] == [
        (target.repository, target.digest, "digest-mismatch")]
    code, out, err = run(capsys, argv)
    assert code == 0 and json.loads(out)["broken"] == [], err
