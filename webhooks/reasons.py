"""Reasons in the operator's language: each reason the bridge records has a code, its
parameters, and a text in English and in Spanish.

A `Reason` is a `str` (its English text), so every place that stores, logs or compares a reason
keeps working; the store keeps its code and parameters beside the text, and a page renders it
in its own language with `render`. A row written before codes existed has the text alone,
which is shown as it is.

    DELIVERED = Kind("delivered", "wolkvox accepted the recall", "wolkvox aceptó la rellamada")
    reason = DELIVERED()                  # "wolkvox accepted the recall", .code "delivered"
    render(reason.code, reason.params, reason, "es")   # "wolkvox aceptó la rellamada"
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LANGUAGES = ("en", "es")
CATALOG: dict[str, Kind] = {}  # code -> its kind, filled as kinds are declared


class Reason(str):
    """A reason's English text, carrying its code and parameters."""

    code: str
    params: dict[str, Any]

    def __new__(cls, kind: Kind, params: Mapping[str, Any]) -> Reason:
        self = super().__new__(cls, kind.en.format_map(_Params(params)))
        self.code = kind.code
        self.params = dict(params)
        return self

    def text(self, language: str) -> str:
        return render(self.code, self.params, str(self), language)


@dataclass(frozen=True)
class Kind:
    """One kind of reason: its code and its text in each language, with `{name}` for each
    parameter (the same names in both)."""

    code: str
    en: str
    es: str

    def __post_init__(self) -> None:
        if self.code in CATALOG:
            raise ValueError(f"reason code {self.code!r} declared twice")
        if _names(self.en) != _names(self.es):
            raise ValueError(f"reason {self.code!r}: the Spanish text names other parameters")
        CATALOG[self.code] = self

    def __call__(self, **params: Any) -> Reason:
        return Reason(self, params)


class _Params(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _names(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(code: str | None, params: Mapping[str, Any] | None, text: str,
           language: str) -> str:
    """A stored reason in `language`: from its code and parameters when it has a code this
    version knows, else its stored text as it is."""
    kind = CATALOG.get(code or "")
    if kind is None:
        return text
    template = kind.es if language == "es" else kind.en
    return template.format_map(_Params(params or {}))


def code_of(reason: str | None) -> str | None:
    return reason.code if isinstance(reason, Reason) else None


def params_of(reason: str | None) -> dict[str, Any] | None:
    return reason.params if isinstance(reason, Reason) else None
