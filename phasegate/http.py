"""The one HTTP client factory every module uses.

What each client gets, always:
- connect/read/write/pool timeouts, plus a wall-clock ceiling per exchange
  (a server that dribbles a body byte by byte still ends);
- TLS verification (a CA bundle may be named; `verify=False` only on request);
- HTTP/2 where the server offers it (ALPN; `http2=False` turns it off, as
  phasegate.oci does: see the README's "OCI client"), connection reuse;
- retries with backoff for idempotent reads only (GET/HEAD), on connection
  errors, a connection that broke before any answer, and 502/503/504; never on
  a read timeout (the server may still be working) and never on any 4xx (a 404
  is an answer, not a glitch);
- the read-only guard: anything but GET/HEAD is refused before it leaves the
  process unless the running gate is allowed to write (`@writes`);
- a transcript of every exchange, credentials redacted, for the report.

Transport failures become `phasegate.verdict.Broken` subclasses with one
redacted line, so a gate ends with a verdict, never a raw traceback.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import ssl
import threading
import time
from dataclasses import dataclass

import httpcore
import httpx

from phasegate.secrets import redact
from phasegate.verdict import Broken, ServerError, TimedOut, Unreachable, WriteRefused

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})
USER_AGENT = "phasegate/0.1"


@dataclass(frozen=True)
class HttpSettings:
    connect: float = 5.0
    read: float = 30.0
    total: float = 120.0
    retries: int = 2
    backoff: float = 0.5

    @classmethod
    def from_timeouts(cls, t) -> HttpSettings:
        return cls(connect=t.connect, read=t.read, total=t.total, retries=t.retries, backoff=t.backoff)


# --------------------------------------------------------------------------
# Read-only guard
# --------------------------------------------------------------------------


class WriteGuard:
    """Process-wide switch: writes are refused unless a writing gate opened it.

    Process-wide (not a context variable) on purpose: the integrity walk and
    the Kubernetes client use worker threads, and a guard that a thread pool
    could escape would be a promise, not a guard.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._allowed = False
        self._reason = "read-only gate"

    @property
    def allowed(self) -> bool:
        return self._allowed

    def set(self, allowed: bool, reason: str = "") -> None:
        with self._lock:
            self._allowed = allowed
            self._reason = reason or ("@writes gate" if allowed else "read-only gate")

    @contextlib.contextmanager
    def writes_allowed(self, reason: str = "explicit"):
        prev, prev_reason = self._allowed, self._reason
        self.set(True, reason)
        try:
            yield
        finally:
            self.set(prev, prev_reason)

    def check(self, method: str, target: str) -> None:
        if method.upper() not in SAFE_METHODS and not self._allowed:
            raise WriteRefused(
                f"refused {method.upper()} {redact(target)}: this gate is read-only "
                f"(tag the scenario @writes to allow writes)"
            )


GUARD = WriteGuard()


# --------------------------------------------------------------------------
# Transcript
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    seq: int
    method: str
    url: str
    status: int | None
    request_headers: dict
    response_headers: dict
    elapsed_ms: float
    error: str = ""

    def line(self) -> str:
        status = self.status if self.status is not None else f"error: {self.error}"
        return f"{self.method} {self.url} -> {status} ({self.elapsed_ms:.0f} ms)"


class Transcript:
    """A bounded log of redacted exchanges; the report attaches a failed step's slice."""

    def __init__(self, maxlen: int = 500):
        self._items: collections.deque[Exchange] = collections.deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()

    def mark(self) -> int:
        return self._seq

    def since(self, mark: int) -> list[Exchange]:
        with self._lock:
            return [e for e in self._items if e.seq > mark]

    def add(self, **kw) -> None:
        with self._lock:
            self._seq += 1
            self._items.append(Exchange(seq=self._seq, **kw))

    def render(self, items: list[Exchange]) -> str:
        out = []
        for e in items:
            out.append(e.line())
            for k, v in e.request_headers.items():
                out.append(f"  > {k}: {v}")
            for k, v in e.response_headers.items():
                out.append(f"  < {k}: {v}")
        return "\n".join(out)


TRANSCRIPT = Transcript()

_SHOWN_HEADERS = {
    "accept",
    "authorization",
    "content-type",
    "content-length",
    "docker-content-digest",
    "www-authenticate",
    "location",
    "link",
    "range",
    "x-total-count",
}


def _headers(h: httpx.Headers) -> dict:
    return {k: redact(f"{k}: {v}").split(": ", 1)[1] for k, v in h.items() if k.lower() in _SHOWN_HEADERS}


# --------------------------------------------------------------------------
# Transport: guard, retries, deadline, error mapping, transcript
# --------------------------------------------------------------------------


# The total deadline is enforced at the socket: every connect, TLS handshake,
# read and write of the current exchange waits at most until the deadline. A
# server that dribbles its headers one byte per second never trips the read
# timeout (bytes keep coming), so only this stops it. The deadline lives in a
# thread-local because httpx's sync client does all I/O of an exchange on the
# caller's thread (headers in handle_request, the body when it is iterated).
_EXCHANGE = threading.local()


def _remaining(timeout: float | None, exc: type[Exception]) -> float | None:
    deadline = getattr(_EXCHANGE, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("total timeout reached")
    return left if timeout is None else min(timeout, left)


@contextlib.contextmanager
def _exchange_deadline(deadline: float):
    prev = getattr(_EXCHANGE, "deadline", None)
    _EXCHANGE.deadline = deadline
    try:
        yield
    finally:
        _EXCHANGE.deadline = prev


class _DeadlineNetworkStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream):
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _remaining(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        return self._inner.write(buffer, _remaining(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        inner = self._inner.start_tls(ssl_context, server_hostname, _remaining(timeout, httpcore.ConnectTimeout))
        return _DeadlineNetworkStream(inner)

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend):
        self._inner = inner

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(host, port, _remaining(timeout, httpcore.ConnectTimeout),
                                         local_address, socket_options)
        return _DeadlineNetworkStream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineNetworkStream(
            self._inner.connect_unix_socket(path, _remaining(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _deadline_transport(**kw) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(**kw)
    pool = transport._pool  # httpx keeps its httpcore pool here (httpx pinned <0.29; a test covers it)
    pool._network_backend = _DeadlineBackend(pool._network_backend)
    return transport


def _past(deadline: float) -> bool:
    return time.monotonic() >= deadline


class _DeadlineStream(httpx.SyncByteStream):
    def __init__(self, inner, deadline: float, what: str, total: float):
        self._inner, self._deadline, self._what, self._total = inner, deadline, what, total

    def __iter__(self):
        it = iter(self._inner)
        while True:
            try:
                with _exchange_deadline(self._deadline):
                    chunk = next(it)
            except StopIteration:
                return
            except httpx.TimeoutException as e:
                if _past(self._deadline):
                    raise TimedOut(f"{self._what}: body not complete within the total timeout ({self._total:g}s)") from None
                raise TimedOut(f"{self._what}: {type(e).__name__} while reading the body") from None
            except (httpx.RemoteProtocolError, httpx.ReadError) as e:
                raise Unreachable(f"{self._what}: connection broke mid-body ({type(e).__name__}: {_reason(e)})") from None
            yield chunk

    def close(self):
        self._inner.close()


class GuardedTransport(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport, settings: HttpSettings, guard: WriteGuard, transcript: Transcript):
        self._inner = inner
        self._s = settings
        self._guard = guard
        self._transcript = transcript

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method.upper()
        what = f"{method} {redact(str(request.url))}"
        self._guard.check(method, str(request.url))
        attempts = 1 + (self._s.retries if method in ("GET", "HEAD") else 0)
        deadline = time.monotonic() + self._s.total
        delay = self._s.backoff
        for attempt in range(1, attempts + 1):
            start = time.monotonic()
            try:
                with _exchange_deadline(deadline):
                    response = self._inner.handle_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                self._record(request, None, start, f"{type(e).__name__}")
                # a certificate that fails verification is an answer, not a glitch: no retry
                if attempt < attempts and not _is_certificate_error(e) and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise Unreachable(f"{what}: cannot connect ({_reason(e)})") from None
            except httpx.TimeoutException as e:
                self._record(request, None, start, type(e).__name__)
                if _past(deadline):
                    raise TimedOut(f"{what}: no complete answer within the total timeout ({self._s.total:g}s)") from None
                raise TimedOut(f"{what}: no answer within the timeout ({type(e).__name__})") from None
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as e:
                self._record(request, None, start, type(e).__name__)
                # No answer came back, so a read may be sent again: a reused keep-alive connection the
                # server (or httpcore's pool, encode/httpcore#1110) closed under us is a glitch, not a verdict.
                if attempt < attempts and time.monotonic() + delay < deadline:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise Unreachable(f"{what}: connection broke ({_reason(e)})") from None
            except httpx.TransportError as e:  # anything else httpx can raise on the wire: still one line
                self._record(request, None, start, type(e).__name__)
                raise Unreachable(f"{what}: {type(e).__name__}: {_reason(e)}") from None
            self._record(request, response, start)
            if response.status_code in RETRY_STATUSES and attempt < attempts and time.monotonic() + delay < deadline:
                response.close()
                time.sleep(delay)
                delay *= 2
                continue
            response.stream = _DeadlineStream(response.stream, deadline, what, self._s.total)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, request, response, start, error: str = ""):
        self._transcript.add(
            method=request.method,
            url=redact(str(request.url)),
            status=None if response is None else response.status_code,
            request_headers=_headers(request.headers),
            response_headers={} if response is None else _headers(response.headers),
            elapsed_ms=(time.monotonic() - start) * 1000,
            error=error,
        )

    def close(self) -> None:
        self._inner.close()


def _is_certificate_error(e: Exception) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in str(e) or isinstance(e.__context__, ssl.SSLCertVerificationError)


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    # ssl errors are long; the first clause says what matters (unknown CA, wrong name)
    return redact(text.splitlines()[0][:300])


def ssl_context(ca_bundle: str = "", verify: bool = True, http2: bool = True) -> ssl.SSLContext | bool:
    """The verifying context of `ca_bundle` (certifi's bundle if none), one per bundle file as it is now: loading
    a bundle costs tens of milliseconds of CPU, and a run makes a client per server it checks. One context per
    `http2` too: httpcore sets a context's ALPN protocols from its connection's setting as it connects."""
    if not verify:
        return False
    if not ca_bundle:
        import certifi

        ca_bundle = certifi.where()
    try:
        st = os.stat(ca_bundle)
        stamp: tuple[int, int, int] = (st.st_ino, st.st_size, st.st_mtime_ns)  # a rewritten bundle is read again
    except OSError:
        stamp = (0, 0, 0)  # a missing bundle: create_default_context says so, as before
    return _bundle_context(ca_bundle, stamp, http2)


@functools.lru_cache(maxsize=32)
def _bundle_context(ca_bundle: str, _stamp: tuple[int, int, int], _http2: bool) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)


def client(
    settings: HttpSettings,
    *,
    base_url: str = "",
    ca_bundle: str = "",
    verify: bool = True,
    headers: dict | None = None,
    auth: httpx.Auth | None = None,
    max_connections: int = 16,
    http2: bool = True,
    guard: WriteGuard | None = None,
    transcript: Transcript | None = None,
) -> httpx.Client:
    """An httpx.Client with every house rule applied (see the module doc)."""
    # Idle connections never expire by time: httpcore's pool may close an "expired" idle connection it has
    # just handed to another thread (encode/httpcore#1110), which a walk with idle stretches hit as EBADF.
    # A connection the server closed is still dropped (has_expired checks readability).
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                          keepalive_expiry=None)
    inner = _deadline_transport(verify=ssl_context(ca_bundle, verify, http2), http2=http2, limits=limits, retries=0)
    transport = GuardedTransport(inner, settings, guard or GUARD, transcript or TRANSCRIPT)
    timeout = httpx.Timeout(connect=settings.connect, read=settings.read, write=settings.read, pool=settings.total)
    h = {"User-Agent": USER_AGENT}
    h.update(headers or {})
    return httpx.Client(
        base_url=base_url,
        transport=transport,
        timeout=timeout,
        headers=h,
        auth=auth,
        follow_redirects=False,
        trust_env=False,  # proxies from the environment would bypass the loopback lab and the guard
    )


def status_error(response: httpx.Response, what: str) -> Broken:
    """A Broken for an answer the gate cannot judge (5xx after retries)."""
    return ServerError(f"{what}: HTTP {response.status_code} from {redact(str(response.request.url))}")
