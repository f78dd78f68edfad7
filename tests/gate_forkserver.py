"""A fork server for gate runs: `python -m pytest ...` without paying for the interpreter and pytest's imports.

The suite's own tests run the gates a few hundred times, each as its own pytest process, and about
0.6 s of the CPU each run costs is importing pytest and the libraries the gates use, the same every time.
This server imports them once (per xdist worker), with phasegate and the steps, and forks one child per
gate run. The child takes the
run's working directory, environment, argv and standard streams, and from there is `python -m pytest`:
pytest's `__main__` run as `-m` runs it, the interpreter's own exit (threads joined, atexit handlers run), its exit code
or signal handed back as a subprocess's would be.

What pytest rewrites the asserts of (the plugins of distributions with a `pytest11` entry point, phasegate's
among them, the root conftest and the step plugins it names) is imported only by pytest's own rewriting hook:
the server reads a gate run's command line in the repository the way pytest starts a run (`_prepareconfig`:
plugins and initial conftests loaded, nothing configured, nothing collected) and then takes the hook out, so
those modules are rewritten as in any run and pytest does not warn "already imported so cannot be rewritten"
(it checks the loader). A run in any other directory forgets the repository's modules first and imports its
own. The test modules, the `-p` plugins and the features are the run's own. Python options fixed at
interpreter start (the `PYTHON*` variables) cannot be given to a child: a run whose `PYTHON*` variables
differ from the server's is a plain subprocess.

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
           "kubernetes.config", "cryptography.x509", "matplotlib.figure", "matplotlib.backends.backend_agg",
           "matplotlib.dates", "matplotlib.patches"]


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


class _RewriteWarnings:
    """A plugin for the warm-up: pytest's "cannot be rewritten" warnings, which it records rather than prints."""

    def __init__(self):
        self.seen: list[str] = []

    def pytest_warning_recorded(self, warning_message) -> None:
        from _pytest.warning_types import PytestAssertRewriteWarning

        if issubclass(warning_message.category, PytestAssertRewriteWarning):
            self.seen.append(str(warning_message.message))


def warm(root: str) -> list[str]:
    """Start a run's configuration in `root` as pytest does, then drop it: what it imported stays, rewritten.
    Returns pytest's warnings about modules it could not rewrite (want none)."""
    from _pytest.assertion.rewrite import AssertionRewritingHook
    from _pytest.config import _prepareconfig

    saved_path, saved_cwd = list(sys.path), os.getcwd()
    os.chdir(root)
    sys.path[0] = root
    warned = _RewriteWarnings()
    try:
        _prepareconfig(["-s", "-p", "no:cacheprovider"], [warned])  # -s: this process's streams stay as they are
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AssertionRewritingHook)]
        sys.path[:] = saved_path
        os.chdir(saved_cwd)
    return warned.seen


def preload(root: str) -> list[str]:
    """Import PRELOAD, pytest's built-in plugins and what a run in `root` loads before collecting; returns what
    pytest would rewrite that was imported un-rewritten (must be empty: the test of this server asserts it)."""
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
    _draw_a_chart()
    rewritten = _rewritten_top_level_names()
    early = sorted(m for m in sys.modules if m.split(".")[0] in rewritten or m.startswith("tests."))
    return early + warm(root)  # before pytest's hook exists, nothing it rewrites; during the warm-up, pytest's word


def _draw_a_chart() -> None:
    """A small chart drawn once: matplotlib's font manager and glyph tables are built on a first draw, the same
    in every run that attaches a criterion's chart (phasegate.charts)."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1), dpi=50, layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], label="warm")
    ax.set_title("warm")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")


def from_root(root: str) -> list[str]:
    """The modules loaded from the repository's own files (phasegate, the steps, the conftest), not its venv."""
    inside = os.path.join(os.path.realpath(root), "")
    venv = os.path.join(os.path.realpath(sys.prefix), "")
    names = []
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and os.path.realpath(f).startswith(inside) and not os.path.realpath(f).startswith(venv):
            names.append(name)
    return names


def serve(path: str, parent: int) -> dict:
    """Accept runs until the parent goes or says `quit`; returns only in a forked child, with its request."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".new")
    listener.listen(64)
    os.rename(path + ".new", path)  # the path appears listening: a caller never connects between bind and listen
    children: dict[int, socket.socket] = {}
    while os.getppid() == parent:
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            conn.settimeout(10)
            try:
                line = conn.makefile("rb").readline()
            except OSError:  # a caller that connected and said nothing (it timed out, or died): not the server's end
                conn.close()
                continue
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


def become_the_run(request: dict, root: str) -> None:
    """In the child: this process is now `python -m pytest <args>` in the request's directory and environment."""
    if os.path.realpath(request["cwd"]) != os.path.realpath(root):
        for name in from_root(root):  # another checkout or project: its own phasegate, steps and conftest
            del sys.modules[name]
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
    root = os.getcwd()  # the repository: the server starts there, as the gate runs do
    if sys.argv[1:] == ["--preloaded"]:  # what pytest rewrites that the preload imported un-rewritten (want none)
        print(preload(root))
        return
    path, parent = sys.argv[1], int(sys.argv[2])
    imported = preload(root)
    if imported:
        print(f"gate fork server: imported what pytest rewrites, un-rewritten: {imported}", file=sys.stderr, flush=True)
        raise SystemExit(3)
    import gc

    gc.freeze()  # the preloaded objects out of the collector's reach: a child's collections do not copy their pages
    sys.stdout.flush()
    sys.stderr.flush()
    become_the_run(serve(path, parent), root)


if __name__ == "__main__":
    main()
