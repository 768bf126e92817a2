"""The memo key: which dataset a value belongs to."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from amberlite.define.fingerprint import canonical_json
from amberlite.define.info import check_name

_HEX = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class MemoKey:
    """feature@version with one parameter assignment; its values live in one dataset."""

    feature: str
    version: int
    params_key: str
    params_json: str = "{}"

    def __post_init__(self) -> None:
        check_name(self.feature, "feature name")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"bad version {self.version!r}")
        if not _HEX.match(self.params_key):
            raise ValueError(f"bad params key {self.params_key!r}")

    @property
    def label(self) -> str:
        return f"{self.feature}@{self.version}"

    def relative_dir(self) -> str:
        return f"values/{self.feature}@{self.version}/{self.params_key}"

    def sql_args(self) -> list[object]:
        return [self.feature, self.version, self.params_key]


class Keyed(Protocol):
    """What a memo key is made of: a FeatureSpec or a FeatureInfo."""

    name: str
    version: int

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]: ...

    def params_key(self, given: Mapping[str, Any] | None = None) -> str: ...


def memo_key(spec: Keyed, params: Mapping[str, Any] | None) -> MemoKey:
    """The dataset of ``spec`` under ``params`` (declared defaults filled in)."""
    resolved = spec.resolve_params(params)
    return MemoKey(spec.name, spec.version, spec.params_key(resolved), canonical_json(resolved))
