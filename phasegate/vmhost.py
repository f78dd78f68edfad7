"""Commands on a remote host (the registry VM, the NAS) over the `ssh` binary.

The checks run *there*: `gzip -t`, `tar -xzOf ... manifest.json`, `readlink`,
`stat` read the tarball where it lies instead of copying gigabytes here.

`ssh` is configured only through files the inventory names (`SshOptions`):
an ssh_config (-F), a key (-i) and a known_hosts file. Host-key checking is
forced on and password prompts off on the command line, so neither a config
file nor an unknown host can turn a gate into an interactive prompt or a
trust-on-first-use. Every command has a deadline (`command_timeout`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from phasegate.config import SshOptions
from phasegate.secrets import redact
from phasegate.verdict import AuthError, Broken, TimedOut, Unreachable

SSH = "ssh"
# ssh exits 255 for its own errors (connect, auth, host key); anything else is the remote command's status.
SSH_ERROR = 255


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int | None

    @classmethod
    def parse(cls, url: str) -> SshTarget:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ssh" or not u.hostname:
            raise Broken(f"not an ssh:// URL: {url!r} (expected ssh://user@host[:port])")
        return cls(u.username or "", u.hostname, u.port)

    @property
    def url(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{self.host}{port}"


def ssh_options(opts: SshOptions) -> list[str]:
    """The ssh arguments every connection gets (no host, no command)."""
    argv: list[str] = []
    if opts.config:
        argv += ["-F", os.path.expanduser(opts.config)]
    if opts.identity_file:
        argv += ["-i", os.path.expanduser(opts.identity_file), "-o", "IdentitiesOnly=yes"]
    if opts.known_hosts:
        argv += ["-o", f"UserKnownHostsFile={os.path.expanduser(opts.known_hosts)}"]
    argv += [
        "-o", "BatchMode=yes",  # never prompt: no password, no "trust this host?"
        "-o", "StrictHostKeyChecking=yes",  # unknown or changed host key = refuse
        "-o", f"ConnectTimeout={max(1, int(opts.connect_timeout))}",
        "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
        "-o", "LogLevel=ERROR",
    ]
    return argv


@dataclass(frozen=True)
class Result:
    argv: list[str]  # the remote command
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


class RemoteHost:
    """A host reached with `ssh user@host command`."""

    def __init__(self, url: str, options: SshOptions):
        self.target = SshTarget.parse(url)
        self.options = options

    @classmethod
    def registry_vm(cls, inventory) -> RemoteHost:
        vm = inventory.registry_vm
        return cls(vm.url, vm.ssh)

    def __repr__(self) -> str:
        return f"RemoteHost({self.target.url})"

    def ssh_argv(self, remote: list[str]) -> list[str]:
        argv = [SSH] + ssh_options(self.options)
        if self.target.port:
            argv += ["-p", str(self.target.port)]
        if self.target.user:
            argv += ["-l", self.target.user]
        # the remote side gets one shell-quoted string: paths with spaces stay one argument
        return argv + ["--", self.target.host, shlex.join(remote)]

    def run(self, remote: list[str], *, timeout: float | None = None) -> Result:
        """Run `remote` (argv) on the host; ssh failures are Broken, the command's status is the caller's."""
        timeout = timeout or self.options.command_timeout
        what = f"{shlex.join(remote)} on {self.target.url}"
        try:
            p = subprocess.run(self.ssh_argv(remote), stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimedOut(f"{what}: no answer within {timeout:.0f}s") from None
        except FileNotFoundError:
            raise Broken(f"{what}: the ssh client is not installed (Debian package openssh-client)") from None
        stderr = redact(p.stderr.decode(errors="replace").strip())
        if p.returncode == SSH_ERROR:
            raise _ssh_failure(what, stderr)
        return Result(remote, p.returncode, p.stdout, stderr)

    # -- small remote facts ------------------------------------------------
    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path]).ok

    def listdir(self, path: str) -> list[str] | None:
        """Names in a directory (None if it does not exist)."""
        r = self.run(["ls", "-1A", "--", path])
        if not r.ok:
            if not self.exists(path):
                return None
            raise Broken(f"ls {path} on {self.target.url} failed: {r.stderr}")
        return [line for line in r.text.splitlines() if line]


def _ssh_failure(what: str, stderr: str) -> Broken:
    low = stderr.lower()
    line = stderr.splitlines()[-1] if stderr else "ssh exited 255"
    if "host key verification failed" in low or "host key for" in low or "remote host identification" in low:
        return AuthError(f"{what}: the host key is not in the known_hosts file the inventory names ({line})")
    if "permission denied" in low:
        return AuthError(f"{what}: SSH login refused ({line})")
    if "timed out" in low:
        return TimedOut(f"{what}: {line}")
    return Unreachable(f"{what}: {line}")


class SshWrapper:
    """A directory holding an `ssh` that adds the inventory's options.

    The docker SDK's ssh transport (`use_ssh_client=True`) runs plain `ssh`
    from PATH; putting this directory first on PATH for its calls is how the
    SDK gets the inventory's key, known_hosts and forced host-key checking.
    """

    def __init__(self, options: SshOptions):
        real = shutil.which(SSH)
        if real is None:
            raise Broken("the ssh client is not installed (Debian package openssh-client)")
        self.dir = Path(tempfile.mkdtemp(prefix="phasegate-ssh-"))
        script = self.dir / SSH
        script.write_text("#!/bin/sh\nexec " + shlex.join([real] + ssh_options(options)) + ' "$@"\n')
        script.chmod(0o700)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
