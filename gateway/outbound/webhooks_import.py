"""Event types read from an OpenAPI 3.1 document's `webhooks`, as Svix and Convoy
import them: one type per entry, named by its key, with the JSON schema and examples
of its `post` request body.

A body that is a whole payload (`type` and `data` among its properties, as the
gateway's own document describes a delivery) gives the schema and examples of its
`data`. `$ref`s to `#/components/schemas/...` become `$defs` of the type's schema,
so that each type's schema stands alone (recursive ones included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import Invalid
from gateway.validation import EVENT_TYPE_PATTERN

_NAME = re.compile(EVENT_TYPE_PATTERN)
_COMPONENT = "#/components/schemas/"
_EXAMPLE = "#/components/examples/"


@dataclass
class ImportedType:
    name: str
    description: str | None
    data_schema: dict[str, Any] | None
    examples: list[Any] = field(default_factory=list)
    deprecated: bool = False


def webhook_types(document: dict[str, Any]) -> list[ImportedType]:
    """One type per webhook; Invalid (422) naming the entry that cannot be read."""
    components = document.get("components") or {}
    if not isinstance(components, dict):
        raise Invalid("components must be an object", loc=("body", "components"))
    found = []
    for key, item in document["webhooks"].items():
        where: tuple[str | int, ...] = ("body", "webhooks", key)
        if not _NAME.match(key) or len(key) > 255:
            raise Invalid(
                f"webhook {key!r} cannot be an event type: its name must be letters, "
                "digits, '_', '.' and '-' (at most 255)",
                loc=where,
            )
        operation = item.get("post")
        if not isinstance(operation, dict):
            raise Invalid(f"webhook {key!r} has no post operation", loc=where)
        found.append(_read(key, operation, components, (*where, "post")))
    return found


def _read(
    name: str, operation: dict[str, Any], components: dict[str, Any], where: tuple[str | int, ...]
) -> ImportedType:
    body = _resolve_object(operation.get("requestBody") or {}, components, "requestBodies", where)
    media = (body.get("content") or {}).get("application/json")
    schema: dict[str, Any] | None = None
    examples: list[Any] = []
    if isinstance(media, dict):
        raw = media.get("schema")
        if raw is not None and not isinstance(raw, dict):
            raise Invalid(f"webhook {name!r}: its schema must be an object", loc=where)
        schema = _standalone(raw, components, where) if raw is not None else None
        examples = _examples(media, components, where)
        if schema is not None and isinstance(schema.get("examples"), list) and not examples:
            examples = list(schema["examples"])
        schema, examples = _data_part(schema, examples)
        if not all(isinstance(e, dict) for e in examples):
            raise Invalid(f"webhook {name!r}: its examples must be JSON objects", loc=where)
    description = operation.get("description") or operation.get("summary")
    return ImportedType(
        name,
        str(description)[:4000] if description else None,
        schema,
        examples,
        bool(operation.get("deprecated", False)),
    )


def _resolve_object(
    value: Any, components: dict[str, Any], kind: str, where: tuple[str | int, ...]
) -> dict[str, Any]:
    """A request body or example that may be a `$ref` to `#/components/<kind>/...`."""
    if isinstance(value, dict) and isinstance(value.get("$ref"), str):
        prefix = f"#/components/{kind}/"
        ref = value["$ref"]
        target = (components.get(kind) or {}).get(ref[len(prefix) :])
        if not ref.startswith(prefix) or not isinstance(target, dict):
            raise Invalid(f"$ref {ref!r} does not point into components.{kind}", loc=where)
        return target
    if not isinstance(value, dict):
        raise Invalid("expected an object", loc=where)
    return value


def _examples(
    media: dict[str, Any], components: dict[str, Any], where: tuple[str | int, ...]
) -> list[Any]:
    if "example" in media:
        return [media["example"]]
    found = []
    for example in (media.get("examples") or {}).values():
        resolved = _resolve_object(example, components, "examples", where)
        if "value" in resolved:
            found.append(resolved["value"])
    return found


def _data_part(
    schema: dict[str, Any] | None, examples: list[Any]
) -> tuple[dict[str, Any] | None, list[Any]]:
    """The `data` of a whole payload's schema and examples; anything else as it is."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict) or not {"type", "data"} <= properties.keys():
        return schema, examples
    data = properties["data"]
    if not isinstance(data, dict):
        return schema, examples
    assert schema is not None
    if "$defs" in schema:  # where the data's `$ref`s point
        data = {**data, "$defs": schema["$defs"]}
    return data, [e["data"] for e in examples if isinstance(e, dict) and "data" in e]


def _standalone(
    schema: dict[str, Any], components: dict[str, Any], where: tuple[str | int, ...]
) -> dict[str, Any]:
    """The schema with the components it refers to (and they to others) as `$defs`."""
    schemas = components.get("schemas") or {}
    defs: dict[str, Any] = {}
    pending: list[str] = []
    seen: set[str] = set()

    def rewrite(value: Any) -> Any:
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        if not isinstance(value, dict):
            return value
        out = {k: rewrite(v) for k, v in value.items()}
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(_COMPONENT):
            component = ref[len(_COMPONENT) :].split("/", 1)[0]
            if not isinstance(schemas.get(component), dict):
                raise Invalid(f"$ref {ref!r} names no schema in components.schemas", loc=where)
            if component not in seen:
                seen.add(component)
                pending.append(component)
            out["$ref"] = "#/$defs/" + ref[len(_COMPONENT) :]
        return out

    result = rewrite(schema)
    while pending:
        component = pending.pop()
        defs[component] = rewrite(schemas[component])
    if defs:
        if not isinstance(result.get("$defs", {}), dict):
            raise Invalid("$defs must be an object", loc=where)
        result["$defs"] = {**defs, **result.get("$defs", {})}
    return result
