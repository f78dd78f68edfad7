"""A Docker Engine API through the docker SDK: the registry VM's engine over SSH, or a local one.

`ssh://user@host` URLs use the SDK's ssh-client transport: it runs
`ssh user@host docker system dial-stdio` and speaks the Engine API through
that pipe, exactly as `docker -H ssh://...` does. The `ssh` it runs is the
inventory's (see phasegate.vmhost.SshWrapper): key, known_hosts, host-key
checking forced on.

The SDK's own timeout does not reach a pipe to a subprocess, so every call
runs under a deadline here; a call that overruns closes the client (which
ends its ssh processes) and the gate gets TimedOut, not a hang.

Only reads and `login` are offered: a gate never starts, stops or removes a
container. `login` asks the engine to authenticate to a registry (POST /auth):
the engine contacts the registry's /v2/ and token endpoints with GET and
stores nothing, so it is a read for the registries involved.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from phasegate.config import SshOptions
from phasegate.secrets import Secret, redact
from phasegate.verdict import Broken, TimedOut, Unreachable, check
from phasegate.vmhost import SshTarget, SshWrapper

T = TypeVar("T")

# PATH is process-wide: calls that put the ssh wrapper first on it take turns.
_PATH_LOCK = threading.Lock()


@dataclass(frozen=True)
class ContainerState:
    name: str
    status: str  # running, exited, created, paused, ... ; "absent" when no such container
    image: str = ""
    id: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"

    def describe(self) -> str:
        if self.status == "absent":
            return f"{self.name}: no such container"
        return f"{self.name} ({self.id[:12]}, {self.image}): {self.status}"


class LoginRefused(Exception):
    """The engine could not log in to the registry with these credentials."""

    def __init__(self, message: str, status: int | None):
        super().__init__(redact(message))
        self.status = status


class DockerHost:
    def __init__(self, url: str, *, version: str, timeout: float, ssh: SshOptions | None = None):
        import docker  # imported here: a run without Docker gates does not pay for it

        self.url = url
        self.timeout = timeout
        self._wrapper: SshWrapper | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="phasegate-docker-"))
        # an empty docker config: login never reads the user's ~/.docker or runs a credential helper
        self._dockercfg = self._tmp / "config.json"
        self._dockercfg.write_text("{}")
        kwargs: dict = dict(base_url=url, version=version, timeout=int(timeout))
        if url.startswith("ssh://"):
            SshTarget.parse(url)
            self._wrapper = SshWrapper(ssh or SshOptions())
            kwargs["use_ssh_client"] = True
        try:
            self.client = docker.DockerClient(**kwargs)
        except docker.errors.DockerException as e:
            self.close()
            raise Broken(f"Docker API {url}: {redact(str(e))}") from None

    @classmethod
    def registry_vm(cls, inventory) -> DockerHost:
        vm = inventory.registry_vm
        return cls(vm.url, version=vm.docker_api_version, timeout=vm.ssh.command_timeout, ssh=vm.ssh)

    @classmethod
    def configured(cls, inventory, environ: dict | None = None) -> DockerHost:
        """The inventory's [docker_api]; without a url the runner's engine, found as the docker CLI does.

        The CLI and the SDK take $DOCKER_HOST, else unix:///var/run/docker.sock (docker-py
        `DEFAULT_UNIX_SOCKET`); an engine that is not there is a Broken verdict naming the URL.
        Raises NotJudged only when the inventory opts the gate out (`docker_api.not_judged`).
        """
        from phasegate.verdict import NotJudged

        d = inventory.docker_api
        if d.not_judged:
            raise NotJudged(f"docker login not judged: {d.not_judged} (inventory docker_api.not_judged)")
        return cls(engine_url(d.url, os.environ if environ is None else environ),
                   version=d.version, timeout=d.ssh.command_timeout, ssh=d.ssh)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if self._wrapper:
            self._wrapper.close()
        import shutil

        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DockerHost:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the deadline and the transport's PATH ------------------------------
    @contextlib.contextmanager
    def _ssh_on_path(self):
        if not self._wrapper:
            yield
            return
        with _PATH_LOCK:
            old = os.environ.get("PATH", "")
            os.environ["PATH"] = f"{self._wrapper.dir}{os.pathsep}{old}"
            try:
                yield
            finally:
                os.environ["PATH"] = old

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        import docker
        import requests

        with self._ssh_on_path():
            pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dockerhost")
            future = pool.submit(fn)
            try:
                return future.result(timeout=self.timeout)
            except concurrent.futures.TimeoutError:
                self.close()  # ends the ssh pipe, so the worker thread returns
                raise TimedOut(f"{what} on {self.url}: no answer within {self.timeout:.0f}s") from None
            except docker.errors.APIError:
                raise
            except (requests.exceptions.ConnectionError, ConnectionError, OSError, BrokenPipeError) as e:
                raise Unreachable(f"{what} on {self.url}: {_reason(e)}") from None
            except docker.errors.DockerException as e:
                raise Broken(f"{what} on {self.url}: {_reason(e)}") from None
            except Exception as e:  # the ssh pipe closing mid-answer surfaces as odd parse errors
                raise Unreachable(f"{what} on {self.url}: {type(e).__name__}: {_reason(e)}") from None
            finally:
                pool.shutdown(wait=False)

    # -- reads ---------------------------------------------------------------
    def engine(self) -> dict:
        """The engine's /version answer (Version, ApiVersion, Os, ...)."""
        return self._call("GET /version", self.client.version)

    def containers(self) -> dict[str, ContainerState]:
        """Every container (running or not) by name."""
        import docker

        def list_all():
            # one GET /containers/json (the high-level list() inspects every container: a request each)
            return [
                ContainerState(name=(c.get("Names") or ["?"])[0].lstrip("/"), status=str(c.get("State", "")),
                               image=str(c.get("Image", "")), id=str(c.get("Id", "")))
                for c in self.client.api.containers(all=True)
            ]

        try:
            found = self._call("GET /containers/json?all=1", list_all)
        except docker.errors.APIError as e:
            raise Broken(f"listing containers on {self.url}: {_reason(e)}") from None
        return {c.name: c for c in found}

    def container(self, name: str) -> ContainerState:
        return self.containers().get(name, ContainerState(name=name, status="absent"))

    # -- login ---------------------------------------------------------------
    def login(self, registry: str, username: str, password: Secret) -> str:
        """Log the engine in to `registry`; returns the engine's status line. LoginRefused if refused."""
        import docker

        def do_login():
            return self.client.login(username=username, password=password.reveal(), registry=registry,
                                     reauth=True, dockercfg_path=str(self._dockercfg))

        try:
            answer = self._call(f"POST /auth ({username}@{registry})", do_login)
        except docker.errors.APIError as e:
            status = e.response.status_code if e.response is not None else None
            raise LoginRefused(f"{_reason(e)}", status) from None
        return str((answer or {}).get("Status", ""))


# -- the docker login gate (features/phase0_docker_login.feature) -------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """`docker login <host>` through an engine: its status line, or why it was refused."""

    engine: str  # the Docker API's URL
    host: str
    user: str
    status: str = ""
    refused: LoginRefused | None = None


def log_in(docker: DockerHost, inv) -> LoginAttempt:
    """The engine logs in to Forgejo's registry as the inventory's pusher (a refusal is kept for the verdict)."""
    f = inv.forgejo
    try:
        return LoginAttempt(docker.url, f.host, f.pusher.username,
                            status=docker.login(f.host, f.pusher.username, inv.secret(f.pusher.secret)))
    except LoginRefused as e:
        return LoginAttempt(docker.url, f.host, f.pusher.username, refused=e)


def judge_login(attempt: LoginAttempt) -> None:
    refused = attempt.refused
    check(refused is None, expected=f"docker login {attempt.host} as {attempt.user} succeeds",
          seen=f"login refused (HTTP {refused.status if refused else ''}): {refused}",
          where=f"POST /auth on the Docker API {attempt.engine}")


DEFAULT_ENGINE = "unix:///var/run/docker.sock"


def engine_url(configured: str, environ) -> str:
    """The engine a `docker` command would use: the inventory's url, else $DOCKER_HOST, else the socket."""
    return configured or environ.get("DOCKER_HOST", "") or DEFAULT_ENGINE


def _reason(e: Exception) -> str:
    text = getattr(e, "explanation", None) or str(e) or type(e).__name__
    return redact(str(text).splitlines()[0][:400]) if str(text) else type(e).__name__

