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


def register(value: str | None) -> None:
    """Remember a value (and its common encodings) so redact() hides it."""
    if not value or len(value) < 4:
        return
    with _lock:
        _values.add(value)
        # base64 forms appear in Basic headers and dockerconfigjson "auth" fields
        b = base64.b64encode(value.encode()).decode()
        _values.add(b.rstrip("="))


def register_basic(username: str, password: str) -> None:
    """A user:password pair as it appears base64-encoded in Basic auth / auths."""
    register(password)
    register(base64.b64encode(f"{username}:{password}".encode()).decode())


_PATTERNS = [
    # Authorization: Basic xxx / Bearer xxx / token xxx
    (re.compile(r"(?i)(authorization\s*[:=]\s*['\"]?\s*(?:basic|bearer|token)\s+)[^\s'\",}]+"), r"\1" + REDACTED),
    # token=..., password=..., access_token=... in query strings or form bodies
    (re.compile(r"(?i)\b((?:access_)?token|password|passwd|secret|pat)=(?!\*\*\*)([^&\s'\"]+)"), r"\1=" + REDACTED),
    # JSON fields carrying credentials
    (
        re.compile(r"(?i)(\"(?:token|access_token|password|auth|identitytoken|registrytoken|\.dockerconfigjson)\"\s*:\s*\")[^\"]*"),
        r"\1" + REDACTED,
    ),
    # userinfo in URLs
    (re.compile(r"(?i)(https?://[^/\s:@]+:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
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
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
