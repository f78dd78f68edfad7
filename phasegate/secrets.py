"""Secrets that never print, and the redaction every output path goes through.

Every `Secret` registers its value with a process-wide set; `redact()` replaces
any registered value (and well-known credential shapes: Authorization headers,
token query parameters, JSON token/password/auth fields, base64 of user:pass)
with `***`. Logs, HTTP transcripts, exception texts and report attachments all
pass through `redact()` before they leave memory.
"""

from __future__ import annotations

import base64
import re
import threading

REDACTED = "***"

_lock = threading.Lock()
_values: set[str] = set()


class Secret:
    """A credential. `str()`/`repr()` never show it; `.reveal()` does, on purpose."""

    __slots__ = ("_value", "name")

    def __init__(self, value: str, name: str = "secret"):
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = value
        self.name = name
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name}={REDACTED})"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self.name))

    def __reduce__(self):  # never pickled into a cache or a worker by accident
        raise TypeError("Secret values are not serialisable")


def _b64_forms(data: bytes) -> set[str]:
    """The base64 text `data` turns into wherever it sits inside a longer encoded blob.

    base64 works in 3-byte groups, so inside (prefix + data + suffix) the
    encoding of `data` is one of three strings depending on len(prefix) % 3;
    the first and last 4 characters mix with the neighbours and are left out.
    Both alphabets: standard (Basic, dockerconfigjson) and URL-safe (X-Registry-Auth).
    """
    out = set()
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data).decode().rstrip("=")
        core = enc[4 if k else 0 : -4]
        if len(core) >= 12:
            out.add(core)
            out.add(core.translate(_URLSAFE))
    return out


_URLSAFE = str.maketrans("+/", "-_")


def encodings(value: str) -> set[str]:
    """Every form of `value` redact() hides: as is, URL-encoded, base64 (any alignment, both
    alphabets) and base64 of base64 (a dockerconfigjson's "auth" inside a Secret's data)."""
    import urllib.parse

    forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
    once = _b64_forms(value.encode())
    twice = set().union(*(_b64_forms(f.encode()) for f in once)) if once else set()
    full = base64.b64encode(value.encode()).decode()
    return {f for f in forms | once | twice | {full, full.rstrip("=")} if len(f) >= 4}


def register(value: str | None) -> None:
    """Remember a value (and its common encodings) so redact() hides it."""
    if not value or len(value) < 4:
        return
    forms = encodings(value)
    with _lock:
        _values.update(forms)


def register_basic(username: str, password: str) -> None:
    """A user:password pair as it appears base64-encoded in Basic auth / auths."""
    register(password)
    register(base64.b64encode(f"{username}:{password}".encode()).decode())


_Q = "['\"]?"  # a key may be bare (YAML, headers), "json" or 'python-repr' quoted
_KEYS = (r"token|access_token|refresh_token|password|passwd|auth|identitytoken|registrytoken|x-registry-auth|"
         r"\.dockerconfigjson|REG_PASS|FORGEJO_TOKEN")

_PATTERNS = [
    # Authorization: Basic xxx / Bearer xxx / token xxx  (also {'Authorization': 'Bearer xxx'})
    (re.compile(r"(?i)((?:proxy-)?authorization" + _Q + r"\s*[:=]\s*['\"]?\s*(?:basic|bearer|token)\s+)[^\s'\",}]+"),
     r"\1" + REDACTED),
    # "Bearer xxx" / "Basic xxx" anywhere in free text (a server echoing the header into its error)
    (re.compile(r"\b((?:Bearer|Basic)\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + REDACTED),
    # token=..., password=..., access_token=... in query strings or form bodies
    (re.compile(r"(?i)\b((?:access_)?token|password|passwd|secret|pat)=(?!\*\*\*)([^&\s'\"]+)"), r"\1=" + REDACTED),
    # JSON / Python-repr fields carrying credentials ("password": "x", 'auth': 'x')
    (re.compile(r"(?i)(['\"](?:" + _KEYS + r")['\"]\s*:\s*)(['\"]?)(?!\*\*\*)(?:\{.*?\}\}\}|[^\s'\",}]+)"),
     r"\1\2" + REDACTED),
    # the same as YAML or env-style lines (password: x, .dockerconfigjson: eyJ...)
    (re.compile(r"(?im)^(\s*-?\s*(?:" + _KEYS + r")\s*[:=]\s*)(['\"]?)(?!\*\*\*)[^\s'\",}]+"), r"\1\2" + REDACTED),
    # userinfo in URLs
    (re.compile(r"(?i)(https?://[^/\s:@]+:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
    # a JWT (registry Bearer tokens) wherever it appears
    (re.compile(r"\beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]+"), REDACTED),
]


_KEY_WORDS = tuple(k.replace("\\.", ".").lower() for k in _KEYS.split("|"))  # _KEYS' words as plain text
# what each of _PATTERNS cannot match without, in ASCII text (lower-cased for the case-insensitive ones): most
# text has none, and a pattern's scan of a large report file is the cost of redacting it
def _names_a_key(_text: str, low: str) -> bool:
    return any(w in low for w in _KEY_WORDS)


_NEEDS = [
    lambda t, low: "authorization" in low,
    lambda t, low: "Bearer" in t or "Basic" in t,
    lambda t, low: "=" in t and any(w in low for w in ("token=", "password=", "passwd=", "secret=", "pat=")),
    _names_a_key,  # JSON / Python-repr fields
    _names_a_key,  # YAML / env lines
    lambda t, low: "://" in t and "@" in t,
    lambda t, low: "eyJ" in t,
]


def redact(text: str) -> str:
    """`text` with every known secret and credential shape replaced by ***."""
    if not text:
        return text
    if not isinstance(text, str):
        text = str(text)
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for v in values:
        if v in text:
            text = text.replace(v, REDACTED)
    # outside ASCII a case-insensitive pattern also matches letters that lower() does not map to ASCII
    # (the Kelvin sign for k, a long s for s): every pattern runs
    low = text.lower() if text.isascii() else None
    for (pattern, repl), needs in zip(_PATTERNS, _NEEDS, strict=True):
        if low is None or needs(text, low):
            text = pattern.sub(repl, text)
    return text
