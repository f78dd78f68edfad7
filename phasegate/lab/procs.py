"""Processes of the lab: start, wait until ready, stop; and what a lab leaves behind when it is killed.

Every process a lab starts dies with it, however the lab ends:
- a `Proc` started from the main thread gets the kernel's parent-death signal (SIGKILL);
- a keeper (`python -m phasegate.lab.procs keep DIR`, its own session) holds the read end of a
  pipe only the lab holds open; when the lab exits or is killed the pipe closes and the keeper
  sweeps the lab directory: everything `lab_processes` finds is killed, `lab_mounts` unmounted.
  That also covers what the parent-death signal cannot: podman's conmons and containers (they
  daemonize), an sshd session, a gate run in a pytest subprocess, a process started by a thread.
A lab start sweeps the same way before it clears its directory (`sweep`), for the case where the
keeper died too. A process belongs to a lab when its command line names the lab directory, it
carries the lab's mark in its environment (every `Proc` does), it runs in a cgroup named after one
of the lab's podman containers, or it descends from one of those. Nothing else is touched.
Loopback only.
"""

from __future__ import annotations

import ctypes
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


class LabError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_LOOPBACK_HTTP = None
_LOOPBACK_HTTP_LOCK = threading.Lock()


def loopback_http():
    """One plain-HTTP client for the lab's own requests to its loopback servers (readiness polls, pushes):
    `httpx.get` builds a client, and loads a CA bundle, on every call (tens of milliseconds of CPU per poll)."""
    global _LOOPBACK_HTTP
    with _LOOPBACK_HTTP_LOCK:
        if _LOOPBACK_HTTP is None:
            import httpx  # here, not above: the keeper (`python -m phasegate.lab.procs keep`) never needs it

            _LOOPBACK_HTTP = httpx.Client(trust_env=False, verify=False)
        return _LOOPBACK_HTTP


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05,
               proc: Proc | None = None) -> None:
    """Poll `check` until true; fail with the process log tail if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.popen.poll() is not None:
            raise LabError(f"{what}: process exited with {proc.popen.returncode}\n{proc.log_tail()}")
        try:
            if check():
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            tail = proc.log_tail() if proc else ""
            raise LabError(f"{what}: not ready within {timeout:.0f}s\n{tail}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict | None = None
    cwd: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        lab_dir = owning_lab(self.log)
        if lab_dir is not None:  # how a sweep knows it for the lab's even when its command line does not say
            env[LAB_MARK] = str(lab_dir)
        # own process group: stopping the lab stops every child it spawned
        self.popen = subprocess.Popen(
            self.argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=self.cwd, start_new_session=True, preexec_fn=_die_with_parent(),
        )
        fh.close()
        return self

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, n: int = 20) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return ""
        return "\n".join(f"  {self.name}| {line}" for line in lines)

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout: float = 5.0) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout)


# --------------------------------------------------------------------------
# Dying with the lab; finding and removing what a killed lab left behind
# --------------------------------------------------------------------------

LAB_MARK = "PHASEGATE_LAB"   # environment variable every Proc of a lab carries: the lab directory
OWNER_FILE = ".lab-owner"    # in the lab directory: "<pid> <start time>" of the process running the lab
KEEPER_MODULE = "phasegate.lab.procs"
ARMED = "armed"  # the keeper's first line: it is watching
_PR_SET_PDEATHSIG = 1
_MNT_DETACH = 2
_CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """A preexec_fn giving the child SIGKILL when its parent dies, or None off the main thread: the
    signal fires when the *thread* that forked exits, which would kill a server a short-lived
    thread started (the keeper covers those)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = _libc.prctl

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_pdeathsig


def owning_lab(path: Path) -> Path | None:
    """The lab directory `path` lies in (the nearest one holding an owner file), if any."""
    for d in Path(path).resolve().parents:
        if (d / OWNER_FILE).exists():
            return d
    return None


@dataclass
class _Pid:
    pid: int
    ppid: int
    start: int          # start time (clock ticks after boot): a pid with another start time is another process
    comm: str
    state: str
    argv: list[str]
    mark: str | None    # LAB_MARK from the environment
    cgroup: str

    def alive(self) -> bool:
        now = _read_pid(self.pid, want_env=False)
        return now is not None and now.start == self.start and now.state not in "ZX"

    def describe(self) -> str:
        return f"{self.pid} ({' '.join(self.argv)[:160] or self.comm})"


def _read_pid(pid: int, want_env: bool = True) -> _Pid | None:
    base = f"/proc/{pid}"
    try:
        with open(f"{base}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2:].split()
        state, ppid, start = rest[0], int(rest[1]), int(rest[19])
        with open(f"{base}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except (OSError, ValueError, IndexError):
        return None
    mark, cgroup = None, ""
    if want_env:
        try:
            with open(f"{base}/environ", "rb") as f:
                for entry in f.read().split(b"\0"):
                    if entry.startswith(LAB_MARK.encode() + b"="):
                        mark = entry.split(b"=", 1)[1].decode(errors="replace")
            with open(f"{base}/cgroup", "rb") as f:
                cgroup = f.read().decode(errors="replace")
        except OSError:
            pass
    return _Pid(pid, ppid, start, comm, state, argv, mark, cgroup)


def _snapshot() -> dict[int, _Pid]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = _read_pid(int(name))
            if p is not None:
                out[p.pid] = p
    return out


def _names_dir(lab_dir: Path) -> Callable[[str], bool]:
    # the directory itself, not a sibling that starts with the same letters (/x/lab vs /x/lab2)
    pattern = re.compile(r"(?<![\w.-])" + re.escape(str(lab_dir)) + r"(?![\w.-])")
    return lambda text: pattern.search(text) is not None


def _container_ids(lab_dir: Path, depth: int = 4) -> set[str]:
    """IDs of podman containers whose storage is under the lab directory (their cgroups carry the ID)."""
    ids: set[str] = set()

    def walk(d: Path, left: int) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            if _CONTAINER_ID.match(e.name):
                ids.add(e.name)  # not entered: it holds a container's files
            elif left > 0:
                walk(Path(e.path), left - 1)

    walk(lab_dir, depth)
    return ids


def _ancestors(pid: int, procs: dict[int, _Pid]) -> set[int]:
    out = set()
    while pid in procs and pid not in out:
        out.add(pid)
        pid = procs[pid].ppid
    return out


def _is_keeper(p: _Pid, names: Callable[[str], bool]) -> bool:
    return KEEPER_MODULE in p.argv and "keep" in p.argv and any(names(a) for a in p.argv)


def lab_processes(lab_dir: Path) -> list[_Pid]:
    """The live processes of the lab in `lab_dir` (see the module docstring), never this process
    nor one of its ancestors."""
    lab_dir = Path(lab_dir).resolve()
    names = _names_dir(lab_dir)
    cids = _container_ids(lab_dir)
    procs = _snapshot()
    spared = _ancestors(os.getpid(), procs)
    ours = {p.pid for p in procs.values()
            if p.state not in "ZX"
            and (p.mark == str(lab_dir) or any(names(a) for a in p.argv)
                 or any(cid in p.cgroup for cid in cids))} - spared
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    todo = list(ours)
    while todo:  # and everything they started (an sshd's sessions, a podman's conmon)
        for c in children.get(todo.pop(), []):
            if c not in ours and c not in spared and procs[c].state not in "ZX":
                ours.add(c)
                todo.append(c)
    return [procs[pid] for pid in sorted(ours)]


def _unescape_mount(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def lab_mounts(lab_dir: Path) -> list[str]:
    """Mount points under the lab directory (podman's container `shm`), deepest first. Not the
    directory itself: a lab kept on a file system of its own keeps it."""
    lab_dir = str(Path(lab_dir).resolve())
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = _unescape_mount(line.split()[4])
                if point.startswith(lab_dir + "/"):
                    out.append(point)
    except OSError:
        pass
    return sorted(set(out), key=lambda m: (-m.count("/"), m))


def _kill(victims: list[_Pid], timeout: float) -> list[_Pid]:
    """SIGKILL each (re-checked by start time, and held by a pidfd where the kernel has them, so a
    reused pid is never hit); wait until they are gone. Returns the ones still alive."""
    poller, fds, sent = select.poll(), [], []
    for p in victims:
        try:
            fd = os.pidfd_open(p.pid)
        except ProcessLookupError:
            continue  # already gone
        except (AttributeError, OSError):
            fd = None  # no pidfds here: the start time check alone
        now = _read_pid(p.pid, want_env=False)
        if now is None or now.start != p.start:
            if fd is not None:
                os.close(fd)
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL) if fd is not None else os.kill(p.pid, signal.SIGKILL)
        except OSError:
            pass
        sent.append(p)
        if fd is not None:
            fds.append(fd)
            poller.register(fd, select.POLLIN)  # a pidfd turns readable when its process has ended
    deadline = time.monotonic() + timeout
    try:
        while any(p.alive() for p in sent) and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):  # with nothing registered (left): a 100 ms wait
                poller.unregister(fd)
    finally:
        for fd in fds:
            os.close(fd)
    return [p for p in sent if p.alive()]


@dataclass
class Swept:
    processes: list[str] = field(default_factory=list)  # what was killed: command names
    mounts: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.mounts)

    def summary(self) -> str:
        parts = []
        if self.processes:
            counts = Counter(self.processes)
            names = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(counts.items()))
            parts.append(f"{len(self.processes)} process{'es' if len(self.processes) > 1 else ''} ({names})")
        if self.mounts:
            parts.append(f"{len(self.mounts)} mount{'s' if len(self.mounts) > 1 else ''}")
        return " and ".join(parts)


SETTLE = 0.5  # seconds a sweep waits, with nothing of the lab left, for a late child to show itself


def sweep(lab_dir: Path, *, keeper_grace: float = 15.0, timeout: float = 5.0) -> Swept:
    """Kill every process of the lab in `lab_dir` and unmount what is mounted under it.

    A keeper of that directory still at work is given `keeper_grace` seconds to finish first.
    Raises LabError naming the first leftover that would not go."""
    lab_dir = Path(lab_dir).resolve()
    names = _names_dir(lab_dir)
    deadline = time.monotonic() + keeper_grace
    # (one this process started is not waited for: it sweeps only once this process is gone)
    while time.monotonic() < deadline and any(_is_keeper(p, names) and p.ppid != os.getpid()
                                              for p in lab_processes(lab_dir)):
        time.sleep(0.1)
    done = Swept()
    for _ in range(6):  # a process may start another while it dies (podman, conmon): look again
        victims = lab_processes(lab_dir)
        if not victims:
            # a podman killed between its fork and its exec of conmon leaves a child that becomes conmon a
            # moment later (on a busy machine, after the look): nothing new for a settle time, then done
            time.sleep(SETTLE)
            victims = lab_processes(lab_dir)
            if not victims:
                break
        stuck = _kill(victims, timeout)
        if stuck:
            raise LabError(f"a process the last lab in {lab_dir} left would not die: {stuck[0].describe()}")
        done.processes += [p.comm for p in victims]
    else:
        victims = lab_processes(lab_dir)
        if victims:
            raise LabError(f"processes of the last lab in {lab_dir} keep coming back: {victims[0].describe()}")
    _remove_container_cgroups(lab_dir)
    for point in lab_mounts(lab_dir):
        if _libc.umount2(point.encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise LabError(f"cannot unmount {point} (left mounted by the last lab in {lab_dir}): {os.strerror(err)}")
        done.mounts.append(point)
    return done


def _remove_container_cgroups(lab_dir: Path) -> None:
    """The cgroups (cgroupfs manager) of the lab's podman containers, which podman removes only when it
    cleans a container up itself: empty ones go (best effort: they hold nothing and are not in the lab dir)."""
    for cid in _container_ids(lab_dir):
        for cgroup in [*Path("/sys/fs/cgroup").glob(f"*/libpod_parent/libpod-{cid}"),
                       *Path("/sys/fs/cgroup").glob(f"libpod_parent/libpod-{cid}")]:
            try:
                cgroup.rmdir()
            except OSError:
                pass


# -- the owner of a lab directory ----------------------------------------------

def claim(lab_dir: Path) -> None:
    """Write this process as the owner of the (existing) lab directory."""
    me = _read_pid(os.getpid(), want_env=False)
    (Path(lab_dir) / OWNER_FILE).write_text(f"{os.getpid()} {me.start if me else 0}\n")


def release(lab_dir: Path) -> None:
    (Path(lab_dir) / OWNER_FILE).unlink(missing_ok=True)


def owner(lab_dir: Path) -> tuple[int, bool] | None:
    """(pid, alive) of the process that claimed `lab_dir`, if one did and has not released it."""
    try:
        pid, start = (int(x) for x in (Path(lab_dir) / OWNER_FILE).read_text().split()[:2])
    except (OSError, ValueError):
        return None
    p = _read_pid(pid, want_env=False)
    return pid, p is not None and p.start == start and p.state not in "ZX"


def abandoned_labs(root: Path, pattern: str) -> list[Path]:
    """Lab directories under `root` (glob `pattern`) still claimed by a process that is gone:
    labs whose owner was killed before it could stop them."""
    return [f.parent for f in Path(root).glob(f"{pattern}/{OWNER_FILE}")
            if (o := owner(f.parent)) is not None and not o[1]]


# -- the keeper ------------------------------------------------------------------

class Keeper:
    """Sweeps the lab directory when the process that started it ends, however it ends."""

    def __init__(self, lab_dir: Path):
        self.lab_dir = Path(lab_dir).resolve()
        read, self._write = os.pipe()  # both close-on-exec: no other child holds the lab's end open
        log = open(self.log, "ab")
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", KEEPER_MODULE, "keep", str(self.lab_dir)],
                stdin=read, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the lab's process group: a group kill leaves it to clean up
            )
        finally:
            os.close(read)
            log.close()
        # armed before the lab starts its first server, or the lab does not start
        try:
            wait_until(self._armed, timeout=20, what="the lab's keeper", proc=Proc("keeper", [], self.log, popen=self.popen))
        except LabError:
            self.popen.kill()
            self.popen.wait()
            raise

    @property
    def log(self) -> Path:
        return self.lab_dir / "keeper.log"

    def _armed(self) -> bool:
        return ARMED in self.log.read_text()

    def stop(self, timeout: float = 30.0) -> None:
        """The lab has stopped: the keeper makes sure (one last sweep) and exits."""
        if self._write is not None:
            os.close(self._write)
            self._write = None
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _asked_to_stop(*_) -> None:
    raise InterruptedError


def _keep(lab_dir: str) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # asked to stop: sweep first
        signal.signal(sig, _asked_to_stop)
    print(f"keeper: {ARMED} for the lab in {lab_dir}", flush=True)
    try:
        while os.read(0, 4096):
            pass  # the lab never writes: any read returning is the end of the lab
    except InterruptedError:
        pass
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        swept = sweep(Path(lab_dir), keeper_grace=0)
    except LabError as e:
        print(f"keeper: {e}", flush=True)
        return 1
    if swept:
        print(f"keeper: the lab in {lab_dir} ended; removed {swept.summary()}", flush=True)
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["keep"] and len(sys.argv) == 3:
    sys.exit(_keep(sys.argv[2]))
