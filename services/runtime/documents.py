"""Validating a contract into plain dicts, for the busiest topics.

pydantic builds one Python object per nested model: an ordinary order.placed (five lines, each with its
shipment, address and method) is 25 of them, and building them costs three times as much as checking
every field. A *document validator* checks exactly what the model checks (the same core schema: types,
constraints, field validators, defaults, unknown fields refused) but returns nested dicts. It is derived
from the model, so the model stays the one contract; a model-level validator needs a twin that works on
the dict (`validate_document`), and building the validator fails loudly when one is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic_core import SchemaValidator, core_schema

Document = dict[str, Any]


class MissingDocumentCheck(TypeError):
    """A model validator has no twin for documents: validating dicts would skip a rule."""


def _model_check(cls: type[BaseModel]) -> Callable[[Document], Document]:
    check = getattr(cls, "validate_document", None)
    if check is None:
        raise MissingDocumentCheck(
            f"{cls.__name__} has a model validator; give it a classmethod validate_document(dict) -> dict "
            "that applies the same rule to a document"
        )
    return check


def _convert(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_convert(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    if kind == "model":
        return _typed_dict(schema)
    if kind in ("function-after", "function-before", "function-wrap", "function-plain") and (
        isinstance(schema.get("schema"), dict) and schema["schema"].get("type") == "model"
    ):
        # A model validator: it would receive a dict, so it is replaced by the model's document twin.
        if kind != "function-after":
            raise MissingDocumentCheck(f"{kind} model validators are not supported for documents")
        check = _model_check(schema["schema"]["cls"])
        return core_schema.no_info_after_validator_function(check, _convert(schema["schema"]))
    return {key: _convert(value) for key, value in schema.items() if key != "serialization"}


def _typed_dict(model: dict[str, Any]) -> core_schema.CoreSchema:
    fields_schema = model["schema"]
    if fields_schema.get("type") != "model-fields":
        raise TypeError(f"unsupported model schema {fields_schema.get('type')!r} for {model['cls'].__name__}")
    fields = {
        name: core_schema.typed_dict_field(
            _convert(field["schema"]),
            required=field["schema"].get("type") != "default",
            validation_alias=field.get("validation_alias"),
        )
        for name, field in fields_schema["fields"].items()
    }
    config = model.get("config") or {}
    return core_schema.typed_dict_schema(
        fields,
        extra_behavior=fields_schema.get("extra_behavior") or config.get("extra_fields_behavior"),
        ref=model.get("ref"),
    )


@cache
def document_validator(model: type[BaseModel]) -> SchemaValidator:
    """A validator that checks JSON against `model` and returns nested dicts instead of model objects."""
    return SchemaValidator(_convert(model.__pydantic_core_schema__))
