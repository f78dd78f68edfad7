"""Verdicts: a gate either found a defect (GateFailed) or could not judge (Broken).

`GateFailed` is an AssertionError: Allure and pytest show it as *failed*, a
product defect in the registry or the cluster. `Broken` is not: unreachable
hosts, timeouts, missing auth, 5xx after retries: the suite or its environment
could not reach a verdict, shown as *broken*. Both carry one readable message
(expected / seen / where) and are redacted before they are built.
"""

from __future__ import annotations

from phasegate.secrets import redact


class GateFailed(AssertionError):
    """The thing checked is wrong: expected X, saw Y, at Z."""

    def __init__(self, expected: str, seen: str, where: str, evidence: str = ""):
        self.expected = redact(str(expected))
        self.seen = redact(str(seen))
        self.where = redact(str(where))
        self.evidence = redact(evidence)
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"expected: {self.expected}", f"seen:     {self.seen}", f"where:    {self.where}"]
        if self.evidence:
            lines.append(self.evidence)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class Broken(Exception):
    """The gate could not be judged (network, timeout, auth, server error)."""

    def __init__(self, message: str):
        super().__init__(redact(message))


class Unreachable(Broken):
    pass


class TimedOut(Broken):
    pass


class ServerError(Broken):
    pass


class AuthError(Broken):
    pass


class WriteRefused(Broken):
    """A read-only gate tried to write; the guard stopped it before it left."""


def check(ok: bool, *, expected: str, seen: str, where: str, evidence: str = "") -> None:
    if not ok:
        raise GateFailed(expected, seen, where, evidence)


class Pending(Exception):
    """A window is still open and nothing is wrong so far (day N of M, what is still needed).

    Not a failure and not a pass: its own outcome in pytest, Allure and the pushed metrics
    (Argo Rollouts' Inconclusive while the analysis runs). The exit verdict stays red until the
    window is complete only where the caller asks for a final verdict.
    """

    def __init__(self, message: str):
        super().__init__(redact(message))


class NotJudged(Exception):
    """The inventory explicitly opts this gate out; the message carries the inventory's reason."""

    def __init__(self, message: str):
        super().__init__(redact(message))
