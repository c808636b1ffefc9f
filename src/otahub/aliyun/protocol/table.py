"""The parameter table generated from the SDK (`params.json`), as typed objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

Kind = Literal["scalar", "repeat", "struct_list"]
Location = Literal["query", "body"]
_PACKAGE = "otahub.aliyun.protocol"


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: Kind
    location: Location
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActionSpec:
    name: str
    method: str
    """The method the SDK uses; the server accepts GET and POST for every action."""
    params: dict[str, ParamSpec]


def _param(name: str, raw: dict[str, Any]) -> ParamSpec:
    return ParamSpec(
        name=name,
        kind=raw["kind"],
        location=raw["location"],
        fields=tuple(raw.get("fields", ())),
    )


@cache
def load_table() -> dict[str, ActionSpec]:
    text = resources.files(_PACKAGE).joinpath("params.json").read_text()
    raw = json.loads(text)
    return {
        action: ActionSpec(
            name=action,
            method=spec["method"],
            params={n: _param(n, p) for n, p in spec["params"].items()},
        )
        for action, spec in raw["actions"].items()
    }


def api_version() -> str:
    text = resources.files(_PACKAGE).joinpath("params.json").read_text()
    version: str = json.loads(text)["api_version"]
    return version
