"""The `phasegate` command. Exit codes: 0 ok, 1 a gate/check found something, 2 usage/connection/auth."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from phasegate.secrets import Secret, redact

EXIT_OK, EXIT_FOUND, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _lab_start(lab) -> bool:
    """lab.up(); a lab that cannot start (e.g. a leftover of a killed lab that will not go) is one
    error message, never a traceback."""
    from phasegate.lab.procs import LabError

    try:
        lab.up()
    except LabError as e:
        print(f"phasegate lab: error: {redact(str(e))}", file=sys.stderr, flush=True)
        return False
    return True


def _lab_up(args) -> int:
    from phasegate.lab.core import Lab

    comps = args.components.split(",") if args.components else None
    lab = Lab(Path(args.dir), comps)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not _lab_start(lab):
        return EXIT_USAGE
    try:
        (Path(args.dir) / "lab.pid").write_text(str(__import__("os").getpid()))
        print(f"lab is up: inventory {lab.inventory_path}")
        print(f"  secrets:  {lab.env_path} (source it; never commit it)")
        print(f"  use:      . {lab.env_path} && pytest -m phase0")
        print("  stop:     Ctrl-C or `phasegate lab down`", flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text("ready\n")
        stop.wait()
    finally:
        lab.down()
        print("lab stopped", flush=True)
    return EXIT_OK


def _lab_run(args) -> int:
    """The main job: lab up, every gate in its lab stage, report, lab down."""
    import os

    from phasegate.lab.core import MAIN_JOB, Lab

    fault = getattr(args, "fault", "") or ""
    if fault:
        from phasegate.lab.faults import known

        if fault not in known():
            print(f"phasegate lab run: unknown fault {fault!r} (list them with `phasegate lab faults`)",
                  file=sys.stderr)
            return EXIT_USAGE
    stage = getattr(args, "stage", 0) or 0
    if not 0 <= stage <= len(MAIN_JOB):
        print(f"phasegate lab run: no stage {stage} (the main job has {len(MAIN_JOB)})", file=sys.stderr)
        return EXIT_USAGE
    lab = Lab(Path(args.dir))
    worst = 0
    for hook in _BEFORE_RUN:
        hook(args)
    if not _lab_start(lab):
        return EXIT_USAGE
    try:
        env = dict(os.environ)
        env.update(lab.env())
        for markexpr, state in MAIN_JOB if not stage else [MAIN_JOB[stage - 1]]:
            argv = [sys.executable, "-m", "pytest", "-m", markexpr, f"--inventory={lab.inventory_path}",
                    *args.pytest_args]
            label = f"{markexpr}" + (f" (lab state: {state})" if state else "") + (
                f" (fault: {fault})" if fault else "")
            print(f"== gates: {label}", flush=True)
            with contextlib.ExitStack() as applied:  # the state first, then the fault on top (as the matrix does)
                if state:
                    applied.enter_context(lab.state(state))
                if fault:
                    applied.enter_context(lab.fault(fault))
                rc = _gates_until_done(argv, env)
            worst = max(worst, 0 if rc in (0, 5) else rc)
    finally:
        lab.down()
    for hook in _AFTER_RUN:
        hook(args)
    return worst


def _gates_until_done(argv: list[str], env: dict[str, str]) -> int:
    """Wait for a gate run; on Ctrl-C or SIGTERM pass SIGINT on (its @writes teardowns run), then stop the lab.

    A blocking wait would not do: the lab's server threads live in this process, the kernel may hand the signal
    to any of them, and the main thread blocked in waitpid(2) would only see it when the gates end. Polling lets
    the main thread see it within half a second. The handler only records the request: raised inside Popen, a
    KeyboardInterrupt could leave a started gate run that nobody stops.

    The gates start with SIGINT blocked (the mask is inherited through fork and exec) and unblock it as their
    session begins (phasegate.pytest_plugin.pytest_sessionstart): a SIGINT while pytest still imports or parses
    its arguments stays pending until there is a session to interrupt, instead of ending in a traceback from
    pytest's own code."""
    import subprocess

    asked: list[int] = []

    def asked_to_stop(signum, _frame):
        asked.append(signum)

    # both explicitly: a process started from a non-interactive shell's `&` (or by a parent that ignores it)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    previous = {sig: signal.signal(sig, asked_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        if asked:
            raise KeyboardInterrupt
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:  # after the handlers: the gates inherit SIGINT as default, not ignored
            proc = subprocess.Popen(argv, env=env)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        while True:
            try:
                rc: int | None = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                rc = None
            if asked:
                break
            if rc is not None:
                return rc
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise KeyboardInterrupt
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# Called before and after `lab run` (e.g. to start fresh results, render the report and print where it is).
_BEFORE_RUN: list = []
_AFTER_RUN: list = []


def _lab_faults(args) -> int:
    """Every lab fault: what it breaks, and (from a source checkout) the gates it turns red."""
    from phasegate.lab.faults import known, matrix

    reds: dict[str, list] = {}
    for case in matrix():
        reds.setdefault(case.fault, []).append(case)
    faults = known()
    if args.json:
        print(json.dumps([{"fault": f.name, "component": f.component, "description": f.description,
                           "turns_red": [{"scenario": c.scenario, "state": c.state, "expect": c.expect}
                                         for c in reds.get(f.name, [])]} for f in sorted(faults.values(),
                                                                                          key=lambda f: f.name)],
                         indent=2))
        return EXIT_OK
    for f in sorted(faults.values(), key=lambda f: (f.component, f.name)):
        print(f"{f.name}  [{f.component}]  {f.description}")
        for c in reds.get(f.name, []):
            print(f"    red: {c.scenario}" + (f"  (lab state {c.state})" if c.state else ""))
    print(f"\n{len(faults)} faults; run the main job with one: phasegate lab run --fault NAME")
    return EXIT_OK


def _lab_down(args) -> int:
    import os

    pid_file = Path(args.dir) / "lab.pid"
    if not pid_file.exists():
        print(f"no lab running under {args.dir}")
        return EXIT_OK
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)
    print(f"asked lab (pid {pid}) to stop")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="phasegate", description="Acceptance gates for the registry-private -> Forgejo migration")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    lab = sub.add_parser("lab", help="the embedded lab (loopback servers standing in for the homelab)")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, parser_class=_Parser)
    up = lab_sub.add_parser("up", help="start the lab and keep it running until Ctrl-C")
    up.add_argument("--dir", default=".lab", help="lab state directory (default .lab)")
    up.add_argument("--components", default="", help="comma-separated subset of components")
    up.add_argument("--ready-file", default="", help="write this file once the lab is up")
    up.set_defaults(func=_lab_up)
    run = lab_sub.add_parser("run", help="the main job: start the lab, run every gate against it, report")
    run.add_argument("--dir", default=".lab")
    run.add_argument("--fault", default="", metavar="NAME",
                     help="apply this lab fault during every stage of the main job (see `phasegate lab faults`)")
    run.add_argument("--stage", type=int, default=0, metavar="N",
                     help="only stage N of the main job (1: phases 0-3; 2: phases 4-5 on the decommissioned lab); "
                          "default: every stage")
    run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    run.set_defaults(func=_lab_run)
    faults = lab_sub.add_parser("faults", help="list the lab's faults and the gates each turns red")
    faults.add_argument("--json", action="store_true", help="as JSON")
    faults.set_defaults(func=_lab_faults)
    down = lab_sub.add_parser("down", help="stop a lab started with `lab up`")
    down.add_argument("--dir", default=".lab")
    down.set_defaults(func=_lab_down)

    for register in _SUBCOMMANDS:
        register(sub)
    return p


# Other modules add subcommands here: fn(subparsers) -> None, setting `func`.
_SUBCOMMANDS: list = []


# --------------------------------------------------------------------------
# `phasegate report`: the HTML from the Allure results (phasegate.report)
# --------------------------------------------------------------------------


def _register_report(sub) -> None:
    p = sub.add_parser("report", help="render the Allure results as HTML (Allure 3, or Allure 2 as fallback)")
    p.add_argument("--inventory", default=None, metavar="PATH", help="inventory whose [report] names the folders")
    p.add_argument("--results", default=None, metavar="DIR", help="Allure results (default: report.results_dir)")
    p.add_argument("--output", default=None, metavar="DIR", help="HTML folder (default: report.html_dir)")
    p.add_argument("--history", default=None, metavar="DIR",
                   help="history kept across runs (default: report.history_dir; '' for none)")
    p.add_argument("--engine", choices=["auto", "allure3", "allure2"], default="auto")
    p.set_defaults(func=_report)


def _report_settings(inventory_path):
    from phasegate import config

    try:
        return config.load(inventory_path).report
    except config.InventoryError:
        return config.Report()  # the folders do not need a valid inventory


def _report(args) -> int:
    from phasegate import report

    settings = _report_settings(args.inventory)
    history = settings.history_dir if args.history is None else args.history
    try:
        done = report.render(Path(args.results or settings.results_dir), Path(args.output or settings.html_dir),
                             Path(history) if history else None, engine=args.engine,
                             history_limit=settings.history_limit)
    except report.ReportError as e:
        print(f"phasegate report: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"report ({done.engine}): {done.index}")
    return EXIT_OK


def _fresh_results(args) -> None:
    """`lab run` starts from empty results: the report shows this run, the history the earlier ones."""
    import shutil

    results = Path(_report_settings(None).results_dir)
    if results.is_dir():
        shutil.rmtree(results)


def _report_after_run(args) -> None:
    print("== report", flush=True)
    _report(argparse.Namespace(inventory=None, results=None, output=None, history=None, engine="auto"))


_SUBCOMMANDS.append(_register_report)
_BEFORE_RUN.append(_fresh_results)
_AFTER_RUN.append(_report_after_run)


# --------------------------------------------------------------------------
# `phasegate integrity URL ...` (a stable contract: exit 0 nothing broken,
# 1 broken references found, 2 usage/connection/auth error in one line;
# --json prints exactly one object)
# --------------------------------------------------------------------------


def _register_integrity(sub) -> None:
    p = sub.add_parser("integrity", help="walk a registry: every tag, manifest, index child and blob")
    p.add_argument("url", metavar="URL", help="registry base URL, e.g. https://registry.example")
    p.add_argument("--username", default="", help="registry user")
    p.add_argument("--password-env", default="", metavar="VAR",
                   help="environment variable holding the password or token (never pass it on the command line)")
    p.add_argument("--ca-bundle", default="", metavar="FILE", help="PEM CA bundle to verify TLS with")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--mode", choices=["head", "verify"], default="head",
                   help="head: existence and size of everything; verify: download and sha256 every byte")
    p.add_argument("--tags-per-repo", type=_positive, default=None, metavar="N", help="check only N tags per repository")
    p.add_argument("--concurrency", type=_positive, default=8, metavar="N", help="requests in flight (default 8)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--read-timeout", type=_seconds, default=30.0, metavar="S",
                   help="seconds to wait between two bytes of an answer (default 30)")
    p.add_argument("--total-timeout", type=_seconds, default=120.0, metavar="S",
                   help="wall-clock ceiling for one HTTP exchange, body included (default 120)")
    p.set_defaults(func=_integrity)


def _seconds(v: str) -> float:
    try:
        n = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {v!r}") from None
    if not n > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {v}")
    return n


def _positive(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {v!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {v}")
    return n


def _integrity_fail(message: str) -> int:
    print(f"phasegate integrity: error: {redact(message).splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return EXIT_USAGE


def _integrity(args) -> int:
    from phasegate.integrity import check_registry
    from phasegate.oci import RegistryClient
    from phasegate.verdict import Broken

    if not args.url.startswith(("http://", "https://")):
        return _integrity_fail(f"URL must start with http:// or https://, got {args.url!r}")
    password = None
    if args.password_env:
        value = os.environ.get(args.password_env)
        if not value:
            return _integrity_fail(f"environment variable {args.password_env} is not set (it should hold the password)")
        password = Secret(value, name=args.password_env)
    elif args.username:
        return _integrity_fail("--username needs --password-env VAR (the variable holding the password)")
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        return _integrity_fail(f"CA bundle {args.ca_bundle} not found")
    from phasegate.http import HttpSettings

    settings = HttpSettings(connect=min(5.0, args.read_timeout), read=args.read_timeout, total=args.total_timeout)
    try:
        with RegistryClient(args.url, username=args.username, password=password, ca_bundle=args.ca_bundle,
                            verify=not args.insecure, max_connections=max(args.concurrency, 1),
                            settings=settings) as client:
            result = check_registry(client, mode=args.mode, tags_per_repo=args.tags_per_repo,
                                    concurrency=args.concurrency)
    except Broken as e:
        return _integrity_fail(str(e))
    except Exception as e:  # anything else is still one line, never a traceback
        return _integrity_fail(f"{type(e).__name__}: {e}")
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(render_integrity(result))
    return EXIT_OK if result.ok else EXIT_FOUND


def render_integrity(result) -> str:
    lines = [result.summary()]
    if result.broken:
        rows = [("REPOSITORY", "TAG", "KIND", "STATUS", "DIGEST", "PATH")]
        rows += [(b.repository, b.tag, b.kind, str(b.status), b.digest or "-", " > ".join(b.path)) for b in result.broken]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=False)) + "  " + r[5])
    return "\n".join(lines)


_SUBCOMMANDS.append(_register_integrity)


def main(argv: list[str] | None = None) -> int:
    import faulthandler

    args = build_parser().parse_args(argv)
    # a lab that will not stop can be asked where it is: `kill -USR1 <pid>` prints every thread's stack to stderr
    # (code locations only, no values: nothing secret)
    with contextlib.suppress(AttributeError, OSError, ValueError):  # stderr without a file (captured): no stacks
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: what was started is stopped on the way out (finally), no traceback
        print("phasegate: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
