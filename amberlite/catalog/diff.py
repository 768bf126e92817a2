"""Classify declared features against the catalog before anything is applied.

Like a schema diff, each declared feature gets a :class:`Resolution`:

* ``new`` — no version of this name is in the catalog;
* ``unchanged`` — this name@version is there with the same fingerprint;
* ``changed`` — this name@version is there with a different fingerprint: the code changed
  without a version bump. Refused unless forced, since stored values would silently mix;
* ``new_version`` — the name is there, this version is not; old values stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Resolution = Literal["new", "unchanged", "changed", "new_version"]


@dataclass(frozen=True, slots=True)
class Change:
    name: str
    version: int
    resolution: Resolution
    fingerprint: str
    previous_fingerprint: str | None = None
    kind: str = "feature"  # or "annotation type", "annotator"
    reason: str = ""  # what changed, when it is known (a model's weights)

    def describe(self) -> str:
        if self.resolution == "changed" and self.reason:
            return f"{self.name}@{self.version}: {self.reason} without a version bump"
        what = "schema" if self.kind == "annotation type" else "code"
        text = {
            "new": f"new {self.kind}",
            "unchanged": "unchanged",
            "changed": f"{what} changed without a version bump",
            "new_version": "new version (older versions stay readable)",
        }[self.resolution]
        return f"{self.name}@{self.version}: {text}"


def classify(
    name: str, version: int, fingerprint: str, catalog_rows: dict[int, str], kind: str = "feature"
) -> Change:
    """``catalog_rows`` maps each stored version of ``name`` to its fingerprint."""
    if not catalog_rows:
        return Change(name, version, "new", fingerprint, kind=kind)
    if version not in catalog_rows:
        return Change(name, version, "new_version", fingerprint, kind=kind)
    previous = catalog_rows[version]
    if previous == fingerprint:
        return Change(name, version, "unchanged", fingerprint, previous, kind)
    return Change(name, version, "changed", fingerprint, previous, kind)
