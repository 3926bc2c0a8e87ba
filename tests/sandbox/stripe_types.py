"""The fields stripe-python's typed classes declare for each Stripe object, to check the sandbox's JSON against them.

stripe-python is generated from Stripe's OpenAPI specification for the API version it pins (15.6.2:
2026-08-26.dahlia), so a key it does not declare is one the current API does not send: a field an API version removed
(an invoice's top-level `subscription`, gone since 2025-03-31.basil) shows up here while Stripe's fixture file, which
lags, still has it.
"""

import importlib
import inspect
import typing

from stripe._object_classes import OBJECT_CLASSES
from stripe._stripe_object import StripeObject


def object_class(object_name: str | None) -> type | None:
    """stripe-python's class for an `object` value (`invoice` -> stripe.Invoice), or None."""
    entry = OBJECT_CLASSES.get(object_name) if isinstance(object_name, str) else None
    if entry is None:
        return None
    module, name = entry
    return getattr(importlib.import_module(module), name)


def declared_fields(cls: type) -> dict[str, object]:
    """The annotated fields of a stripe-python class and its own bases (not StripeObject's machinery)."""
    fields: dict[str, object] = {}
    for base in reversed(cls.__mro__):
        if base is not StripeObject and issubclass(base, StripeObject):
            fields.update(inspect.get_annotations(base))
    return fields


def _hash_classes(annotation) -> list[type]:
    """The nested StripeObject classes a field's annotation can hold (through Optional, Union, List, Dict)."""
    if isinstance(annotation, type) and issubclass(annotation, StripeObject):
        return [annotation]
    return [found for argument in typing.get_args(annotation) for found in _hash_classes(argument)]


def undeclared_fields(obj: dict, cls: type | None = None, path: str = "") -> list[str]:
    """Paths of keys in `obj` (a Stripe object as JSON) that stripe-python does not declare, recursively through
    nested hashes, lists and embedded (expanded) objects; `metadata` is free-form."""
    cls = cls or object_class(obj.get("object"))
    if cls is None:
        return []
    declared = declared_fields(cls)
    problems = []
    for key, value in obj.items():
        if key not in declared:
            problems.append(f"{path}.{key}")
            continue
        if key == "metadata":
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, dict) and value.get("object") == "list":
            values = value["data"]
        nested = _hash_classes(declared[key])
        for item in values:
            if not isinstance(item, dict):
                continue
            embedded = object_class(item.get("object"))
            if embedded is not None or nested:
                problems += undeclared_fields(item, embedded or nested[0], f"{path}.{key}")
    return problems
