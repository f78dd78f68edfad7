"""Run the gates (a pytest subprocess, exactly as a user runs them) against a lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests import REPO


@dataclass
class GateRun:
    returncode: int
    results: list[dict]
    stdout: str
    stderr: str
    leaks: list[str] = field(default_factory=list)  # secrets found in output, junit, allure results, cache

    def by_scenario(self) -> dict[str, dict]:
        return {r.get("scenario", r["nodeid"]): r for r in self.results}

    def outcome(self, scenario: str) -> str:
        return self.by_scenario()[scenario]["outcome"]

    def message(self, scenario: str) -> str:
        return self.by_scenario()[scenario]["message"]

    def failed(self) -> list[str]:
        return [r["scenario"] for r in self.results if r["outcome"] in ("failed", "error")]

    def pending(self) -> list[str]:
        return [r["scenario"] for r in self.results if r["outcome"] == "pending"]

    def passed(self) -> list[str]:
        return [r["scenario"] for r in self.results if r["outcome"] == "passed"]

    def summary(self) -> str:
        lines = [f"{r['outcome']:8} {r.get('scenario', r['nodeid'])}" for r in self.results]
        bad = [f"--- {r.get('scenario')}\n{r['message']}" for r in self.results if r["outcome"] in ("failed", "error")]
        return "\n".join(lines + bad + ([self.stdout[-3000:], self.stderr[-2000:]] if not self.results else []))


@dataclass
class GateRunner:
    lab: object
    extra_env: dict = field(default_factory=dict)

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASEGATE_")}
        env.update(self.lab.env())
        env.update(self.extra_env)
        return env

    def __call__(self, markexpr: str | None = None, *, fault: str | None = None, scenario: list[str] | str | None = None,
                 args: list[str] | None = None, timeout: float = 600, env: dict | None = None,
                 alluredir: Path | None = None) -> GateRun:
        """`alluredir`: keep the run's Allure results there (default: a temporary folder, discarded)."""
        if fault:
            with self.lab.fault(fault):
                return self._run(markexpr, scenario, args, timeout, env, alluredir)
        return self._run(markexpr, scenario, args, timeout, env, alluredir)

    def _run(self, markexpr, scenario, args, timeout, env, alluredir=None) -> GateRun:
        from tests.canary import leaks_in_text, leaks_in_tree

        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "gates.jsonl"
            # every run also writes junit XML, Allure results and pytest's cache, and all of it is
            # searched for the lab's secrets (tests/canary.py): each gate run is a canary run
            artifacts = Path(tmp) / "artifacts"
            argv = [sys.executable, "-m", "pytest", "-p", "tests.netguard", "-p", "tests.gate_report",
                    f"--override-ini=cache_dir={artifacts / 'pytest-cache'}", f"--junitxml={artifacts / 'junit.xml'}",
                    f"--alluredir={alluredir or artifacts / 'allure-results'}",
                    f"--inventory={self.lab.inventory_path}",
                    f"--gate-report={report}", "-q", "--no-header", "-rN"]
            if markexpr:
                argv += ["-m", markexpr]
            for s in [scenario] if isinstance(scenario, str) else (scenario or []):
                argv += ["--scenario", s]
            argv += args or []
            e = self.env()
            e.update(env or {})
            proc = subprocess.run(argv, cwd=REPO, env=e, capture_output=True, text=True, timeout=timeout)
            results = []
            if report.exists():
                results = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
            secrets = self.lab.secret_values()
            leaks = leaks_in_text(proc.stdout, "stdout", secrets) + leaks_in_text(proc.stderr, "stderr", secrets)
            leaks += leaks_in_text(report.read_text() if report.exists() else "", "gate messages", secrets)
            if artifacts.exists():
                leaks += leaks_in_tree(artifacts, secrets)
            if alluredir and Path(alluredir).exists():
                leaks += leaks_in_tree(Path(alluredir), secrets)
            return GateRun(proc.returncode, results, proc.stdout, proc.stderr, leaks)
