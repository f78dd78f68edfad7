"""Run the gates (a pytest process, exactly as a user runs them) against a lab."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import REPO

# `GATE_RUNS=subprocess`: every gate run a fresh interpreter, not a child of the fork server (the tests
# that find a run's processes by their command line set it: a forked child's is the server's)
GATE_RUNS = "GATE_RUNS"


class ForkServer:
    """This process's gate fork server (tests/gate_forkserver.py), started on first use, ended with it."""

    _lock = threading.Lock()
    _server: ForkServer | None = None

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="pg-fork-"))
        self.path = str(self.dir / "socket")
        self.log = self.dir / "server.log"
        self.env = dict(os.environ)
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.gate_forkserver", self.path, str(os.getpid())],
                                     cwd=REPO, env=self.env, stdin=subprocess.DEVNULL, stdout=self.log.open("wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not os.path.exists(self.path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"the gate fork server did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.02)
        atexit.register(self.stop)

    @classmethod
    def get(cls) -> ForkServer:
        with cls._lock:
            if cls._server is None or cls._server.proc.poll() is not None:
                cls._server = cls()
            return cls._server

    def serves(self, env: dict) -> bool:
        """Whether a run with `env` can be forked: the interpreter options fixed at start are the server's."""
        def fixed(e):
            return {k: v for k, v in e.items() if k.startswith("PYTHON")}
        return fixed(env) == fixed(self.env)

    def run(self, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        """`python -m pytest *args` as subprocess.run(capture_output=True, text=True, timeout=...) runs it."""
        with tempfile.TemporaryDirectory(prefix="pg-run-") as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                try:
                    s.connect(self.path)
                except OSError as e:
                    raise RuntimeError(f"the gate fork server does not answer ({e}; alive: {self.proc.poll() is None}): "
                                       f"{self.log.read_text()[-2000:]}") from None
                s.sendall(json.dumps({"args": args, "cwd": str(cwd), "env": env, "stdout": str(out),
                                      "stderr": str(err)}).encode() + b"\n")
                answers = s.makefile("rb")
                pid = int(answers.readline().split()[1])
                s.settimeout(timeout)
                try:
                    ended = answers.readline()
                except TimeoutError:
                    os.kill(pid, signal.SIGKILL)
                    raise subprocess.TimeoutExpired(["pytest", *args], timeout, _text(out), _text(err)) from None
            if not ended.startswith(b"rc "):
                raise RuntimeError(f"the gate fork server ended during a run: {self.log.read_text()[-2000:]}")
            return subprocess.CompletedProcess(["pytest", *args], int(ended.split()[1]), _text(out), _text(err))

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(self.path)
                    s.sendall(b"quit\n")
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def _text(path: Path) -> str:
    return path.read_bytes().decode(errors="replace") if path.exists() else ""


def run_pytest(args: list[str], *, cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """`python -m pytest *args`: a child of this process's fork server when it can be, else a fresh interpreter."""
    if env.get(GATE_RUNS) != "subprocess":
        server = ForkServer.get()
        if server.serves(env):
            return server.run(args, cwd, env, timeout)
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


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
            argv = ["-p", "tests.netguard", "-p", "tests.gate_report",
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
            proc = run_pytest(argv, cwd=REPO, env=e, timeout=timeout)
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
