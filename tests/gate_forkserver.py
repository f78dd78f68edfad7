"""A fork server for gate runs: `python -m pytest ...` without paying for the interpreter and pytest's imports.

The suite's own tests run the gates a few hundred times, each as its own pytest process, and about
0.6 s of the CPU each run costs is importing pytest and the libraries the gates use, the same every time.
This server imports them once (per xdist worker) and forks one child per gate run. The child takes the
run's working directory, environment, argv and standard streams, and from there is `python -m pytest`:
pytest's `__main__` run as `-m` runs it, the interpreter's own exit (threads joined, atexit handlers run), its exit code
or signal handed back as a subprocess's would be.

What is never imported here: anything pytest rewrites the asserts of (the plugins of distributions with
a `pytest11` entry point, phasegate's among them, the `-p` plugins, the steps and conftests). The child
imports those itself, so they are rewritten as in any run; a test checks that no run warns
"already imported so cannot be rewritten". Python options fixed at interpreter start (the `PYTHON*`
variables) cannot be given to a child: a run whose `PYTHON*` variables differ from the server's is a plain
subprocess.

Protocol, over a Unix socket: one JSON request line `{"args", "cwd", "env", "stdout", "stderr"}`; the
server answers `pid N` when the child exists, and `rc N` when it has ended (a negative N: its signal).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import socket
import sys

# imported once, for every child: pytest itself and libraries without a pytest11 entry point (not httpcore:
# it imports anyio, which has one)
PRELOAD = ["pytest", "asyncio", "concurrent.futures.thread", "faulthandler", "getpass", "gzip", "pdb", "tarfile",
           "tomllib", "httpx", "h11", "h2.connection", "hpack", "yaml", "tomli_w", "regex", "hcl2.api",
           "lark.parsers.lalr_parser", "mako.lookup", "mako.template", "pygments.lexers", "parse", "parse_type.cfparse",
           "gherkin.parser", "gherkin.token_scanner", "gherkin.token_matcher", "gherkin.pickles.compiler", "execnet",
           "allure_commons.lifecycle", "allure_commons.logger", "allure_commons.model2", "kubernetes.client",
           "kubernetes.config", "cryptography.x509"]


def _rewritten_top_level_names() -> set[str]:
    """The modules pytest marks for assert rewriting before it loads the plugins of distributions with a
    `pytest11` entry point (its own `_iter_rewritable_modules`), and phasegate's tree: an import before
    pytest's own would leave them un-rewritten."""
    import importlib.metadata

    from _pytest.config import _iter_rewritable_modules

    names = {"phasegate", "steps", "conftest"}
    for dist in importlib.metadata.distributions():
        entry_points = [ep for ep in dist.entry_points if ep.group == "pytest11"]
        if not entry_points:
            continue
        names |= set(_iter_rewritable_modules(str(f) for f in dist.files or []))
        names |= {ep.value.split(":")[0].split(".")[0] for ep in entry_points}
    return names


def preload() -> list[str]:
    """Import PRELOAD and pytest's built-in plugins; returns what was imported that pytest would rewrite
    (must be empty: the test of this server asserts it)."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    from _pytest.config import default_plugins

    for name in default_plugins:
        importlib.import_module(f"_pytest.{name}")
    import hcl2

    hcl2.loads("warm = 1\n")  # loads its grammar's parser, a pure cache every run reading Terraform would build
    rewritten = _rewritten_top_level_names()
    return sorted(m for m in sys.modules if m.split(".")[0] in rewritten or m.startswith("tests."))


def serve(path: str, parent: int) -> dict:
    """Accept runs until the parent goes or says `quit`; returns only in a forked child, with its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    children: dict[int, socket.socket] = {}
    while os.getppid() == parent:
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            conn.settimeout(10)
            line = conn.makefile("rb").readline()
            if not line or line.strip() == b"quit":
                conn.close()
                if line.strip() == b"quit":
                    break
                continue
            pid = os.fork()
            if pid == 0:
                listener.close()
                for c in [conn, *children.values()]:
                    c.close()
                return json.loads(line)
            conn.sendall(f"pid {pid}\n".encode())
            children[pid] = conn
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid)
            try:
                conn.sendall(f"rc {os.waitstatus_to_exitcode(status)}\n".encode())
            except OSError:  # the caller gave up on this run (its timeout)
                pass
            conn.close()
    for conn in children.values():
        conn.close()
    raise SystemExit(0)


def become_the_run(request: dict) -> None:
    """In the child: this process is now `python -m pytest <args>` in the request's directory and environment."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = request["cwd"]  # what `python -m` puts first
    for fd, (name, flags) in enumerate([(os.devnull, os.O_RDONLY),
                                        (request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                        (request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)]):
        opened = os.open(name, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    import runpy

    sys.argv = ["-m", *request["args"]]  # runpy puts pytest/__main__.py's path first, as `python -m` does
    runpy.run_module("pytest", run_name="__main__", alter_sys=True)


def main() -> None:
    if sys.argv[1:] == ["--preloaded"]:  # what pytest rewrites that the preload imported (its test wants none)
        print(preload())
        return
    path, parent = sys.argv[1], int(sys.argv[2])
    imported = preload()
    if imported:
        print(f"gate fork server: imported what pytest rewrites: {imported}", file=sys.stderr, flush=True)
        raise SystemExit(3)
    import gc

    gc.freeze()  # the preloaded objects out of the collector's reach: a child's collections do not copy their pages
    sys.stdout.flush()
    sys.stderr.flush()
    become_the_run(serve(path, parent))


if __name__ == "__main__":
    main()
