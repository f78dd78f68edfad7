"""The Forgejo stand-in's fault switches, read by every area (the router's transport faults, auth's
scope check, blobs' lost files, the package API's DELETE). One object for the stand-in's life:
`ForgejoStandin.fault()` sets switches for a block and puts the previous values back in place."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Knobs:
    """Faults of the stand-in. `only` limits the transport faults to paths with these prefixes."""

    mode: str = "normal"  # normal | error500 | hang | slow
    slow_seconds: float = 0.0
    only: tuple[str, ...] = ()
    healthy: bool = True  # False: /api/healthz reports database:ping fail (424)
    delete_mode: str = "normal"  # normal | refuse (package API DELETE 500) | ignore (204, version survives)
    enforce_scopes: bool = True  # False: the pre-7.0.8 bug (a permitted user's PAT pushes whatever its scope)
    ignored_deletes: list[tuple[str, str]] = field(default_factory=list)  # (repository, version) answered 204
    blobs_unreadable: bool = False  # HEAD/GET of blobs 404 (database row present, file gone: gitea#19586)
    release: threading.Event = field(default_factory=threading.Event)  # set = hanging requests give up

    def applies(self, path: str) -> bool:
        return not self.only or any(path.startswith(p) for p in self.only)
