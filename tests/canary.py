"""Find secrets where they must never be: outputs, caches, reports.

Every lab secret starts with phasegate.lab.core.CANARY, so the marker alone
finds a leaked value; `forms()` also finds the encodings a value takes on the
wire (base64 at any alignment, base64 of base64 as in a dockerconfigjson
Secret, URL-encoded), which do not contain the marker.
"""

from __future__ import annotations

from pathlib import Path

from phasegate.lab.core import CANARY
from phasegate.secrets import encodings


def forms(values) -> dict[str, str]:
    """encoded form -> which secret it is, for every value (the values themselves included)."""
    out: dict[str, str] = {CANARY: "the canary marker"}
    for v in values:
        if not v:
            continue
        for f in encodings(v):
            if len(f) >= 12 or f == v:
                out[f] = v[: len(CANARY) + 6] + "..."
    return out


def leaks_in_text(text: str, where: str, values, known: dict[str, str] | None = None) -> list[str]:
    """`known`: forms(values), when the caller searches many texts for the same values."""
    found = []
    for form, which in (known or forms(values)).items():
        if form in text:
            i = text.index(form)
            found.append(f"{where}: {which} (as {'itself' if form.startswith(CANARY) else 'an encoding'}) "
                         f"near {text[max(0, i - 40):i].strip()!r}")
    return found


def leaks_in_tree(root: Path, values) -> list[str]:
    """Every file under root (junit XML, allure results, pytest cache, HTML report), bytes decoded leniently."""
    found, known = [], forms(values)  # the encodings once, not once a file
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += leaks_in_text(text, str(path.relative_to(root)), values, known)
    return found
