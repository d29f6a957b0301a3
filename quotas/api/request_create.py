"""The create endpoint's input, read as ``CapacityRequestCreateSerializer`` reads it, cheaper.

A serializer deep-copies its declared fields each time one is built, and its two slug fields
look the SKU and the region up with a query each (compiled by the ORM), before the service
reads their pool with a third. Here the serializer's fields are built once per process (they
keep no per-request state) and, when the SKU and the region are plain codes, one statement
prepared once per connection reads the SKU, the region and their pool. Every field still
validates its value itself, in the serializer's order, and the errors are the serializer's
(``tests/api/test_request_create_input.py`` holds both equal on random input). Anything else
(a form's QueryDict, a body that is not an object, a code that is not a plain string) goes
through the serializer itself.
"""

from __future__ import annotations

import functools

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import SkipField, get_error_detail

from quotas.models import CapacityPool
from quotas.selectors.catalog import sku_region_pool_by_codes

# The fields read from the statement's row (each a SlugRelatedField on ``code``).
_LOOKED_UP = ("sku", "region")


def create_input_validate(
    data, *, serializer_class: type[serializers.Serializer]
) -> tuple[dict, CapacityPool | None]:
    """``serializer_class(data=data)``'s validated data, or its ValidationError, and the pool
    of the SKU and region when they were read together (else None)."""
    codes = [data.get(name) for name in _LOOKED_UP] if type(data) is dict else []
    if not codes or not all(_plain_code(code) for code in codes):
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data, None
    sku, region, pool = sku_region_pool_by_codes(sku_code=codes[0], region_code=codes[1])
    found = {"sku": (sku, codes[0]), "region": (region, codes[1])}
    validated, errors = {}, {}
    for field in _writable_fields(serializer_class):
        name = field.field_name
        try:
            if name in found:
                value, code = found[name]
                if value is None:
                    field.fail("does_not_exist", slug_name=field.slug_field, value=code)
            else:
                value = field.run_validation(field.get_value(data))
        except serializers.ValidationError as exc:
            errors[name] = exc.detail
        except DjangoValidationError as exc:
            errors[name] = get_error_detail(exc)
        except SkipField:
            pass
        else:
            validated[field.source] = value
    if errors:
        raise serializers.ValidationError(errors)
    return validated, pool


def _plain_code(value) -> bool:
    """A code the statement can look up as the slug field's query would: a non-empty string
    (an empty one is null to a related field) that PostgreSQL takes as text."""
    if type(value) is not str or not value or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: the field answers "Invalid value."
        return False
    return True


@functools.cache
def _writable_fields(serializer_class: type[serializers.Serializer]) -> tuple:
    fields = tuple(serializer_class()._writable_fields)
    # Only the fields' own validation runs here: a serializer that validates more would have
    # it skipped without a word.
    hooks = [f"validate_{field.field_name}" for field in fields]
    if serializer_class.validate is not serializers.Serializer.validate or any(
        hasattr(serializer_class, hook) for hook in hooks
    ):
        raise TypeError(
            f"{serializer_class.__name__} validates beyond its fields (validate() or "
            "validate_<field>()), which create_input_validate would skip"
        )
    for field in fields:
        if field.field_name in _LOOKED_UP:
            assert isinstance(field, serializers.SlugRelatedField), field
        assert field.source_attrs == [field.field_name], field  # set as the serializer sets it
    return fields
