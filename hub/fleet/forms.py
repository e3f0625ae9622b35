"""What the page needs to edit a camera's rules as forms instead of JSON: each camera class with its rule
type and catalog defaults, and the typed fields of each rule type's params (number, integer, yes/no,
choice, labels), with bounds, read from the protocol's param models, so the form offers what the agent
accepts. Fields without a simple input (nested objects, per-zone mappings) are `raw`: the page edits
them as JSON. The hub and the agent check the result the same way on save (hub.fleet.check).
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from protocol.catalog import PARAMS_BY_RULE, Intake, RuleType, default_catalog

FieldSpec = dict[str, Any]
_BOUNDS = {annotated_types.Gt: "gt", annotated_types.Ge: "ge", annotated_types.Lt: "lt", annotated_types.Le: "le"}


def param_fields(model: type[BaseModel]) -> list[FieldSpec]:
    """One spec per field of a params model: {name, kind, optional, default, description, bounds, choices}."""
    return [_field(name, info) for name, info in model.model_fields.items()]


def _field(name: str, info: FieldInfo) -> FieldSpec:
    args = typing.get_args(info.annotation) if _is_union(info.annotation) else (info.annotation,)
    optional = type(None) in args
    kinds = [a for a in args if a is not type(None)]
    spec: FieldSpec = {"name": name, "kind": _kind(kinds[0]) if len(kinds) == 1 else "raw", "optional": optional,
                       "required": info.is_required(), "description": info.description or ""}
    if spec["kind"] == "choice":
        spec["choices"] = list(typing.get_args(kinds[0]))
    default = info.get_default(call_default_factory=True) if not info.is_required() else PydanticUndefined
    if default is not PydanticUndefined and not isinstance(default, BaseModel):
        spec["default"] = default
    for meta in info.metadata:
        for bound_type, key in _BOUNDS.items():
            if isinstance(meta, bound_type):
                spec[key] = getattr(meta, key)
    return spec


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (Union, types.UnionType)


def _kind(annotation: Any) -> str:
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is str:
        return "text"
    if typing.get_origin(annotation) is Literal:
        return "choice"
    if typing.get_origin(annotation) is list and typing.get_args(annotation) == (str,):
        return "labels"
    return "raw"


def rule_forms(change_params: type[BaseModel] | None = None) -> dict[str, Any]:
    """{"classes": camera classes with their rule type and defaults, "params": rule type (and "change",
    when the agent's change-detection params were handed in) -> field specs}."""
    classes = [{"id": c.id, "name_zh": c.name_zh, "name_en": c.name_en, "rule": c.rule.value if c.rule else None,
                "defaults": c.params, "labels": c.labels,
                "change_ok": c.rule is not None and c.rule is not RuleType.LINE_CROSSING}
               for c in default_catalog() if c.intake is Intake.CAMERA]
    params = {rule.value: param_fields(model) for rule, model in PARAMS_BY_RULE.items()}
    if change_params is not None:
        params["change"] = param_fields(change_params)
    return {"classes": classes, "params": params}
