"""The Python SDK (clients/python) against the gateway's OpenAPI document: every operation
of the API is one of the SDK's (bar the two below), with the same route, parameters, body
and answer, and every model has the document's fields, types and required ones. A field,
route or status added to the gateway fails here until the SDK has it too."""

from __future__ import annotations

import inspect
import re
import typing
from functools import cache
from typing import Any

from hookgate import models
from hookgate._core import Operation, Stream
from hookgate.resources import RESOURCES
from pydantic import BaseModel, TypeAdapter

from gateway.main import create_app

# Left out of the SDK: providers post to the ingest URL, and Prometheus scrapes /metrics.
NOT_IN_SDK = {("POST", "/in/{source_id}"), ("GET", "/metrics")}
# The ingest route's answers, for the same reason.
SCHEMAS_NOT_IN_SDK = {"InboundAccepted", "InboundChallenge"}
# Operations that take their whole body as one argument.
WHOLE_BODY = {"import_openapi": "document"}
REF = "#/components/schemas/"
# A query parameter's choices, when the document writes them as a pattern.
CHOICES = re.compile(r"^\^\(([\w|]+)\)\$$")


@cache
def _document() -> dict[str, Any]:
    return create_app().openapi()


def _operations() -> dict[tuple[str, str], tuple[str, Operation[Any, Any] | Stream[Any, Any]]]:
    found = {}
    for resource in RESOURCES:
        for name, value in vars(resource).items():
            if isinstance(value, Operation | Stream):
                key = (value.route.method, value.route.path)
                assert key not in found, f"{key} declared twice"
                found[key] = (f"{resource.__name__}.{name}", value)
    return found


def _component_name(model: type[Any]) -> str | None:
    """The name the document gives an SDK model (`Page[EventOut]` is `Page_EventOut_`)."""
    if model is type(None):
        return None
    args = getattr(model, "__pydantic_generic_metadata__", {}).get("args")
    if args:
        return f"Page_{args[0].__name__}_"
    return model.__name__


def _ref_name(schema: dict[str, Any] | None) -> str | None:
    if schema is None:
        return None
    for option in schema.get("anyOf", [schema]):
        if "$ref" in option:
            return str(option["$ref"]).removeprefix(REF)
    raise AssertionError(f"not a reference: {schema}")


def _shape(schema: dict[str, Any]) -> Any:
    """A schema's type with its documentation and constraints left out."""
    if "$ref" in schema:
        return ("ref", schema["$ref"].rsplit("/", 1)[-1])
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return ("union", frozenset(_shape(option) for option in schema[union]))
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _shape(schema["allOf"][0])
    if "const" in schema:
        return ("const", schema["const"])
    if "enum" in schema:
        return ("enum", frozenset(schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        return ("array", _shape(schema.get("items", {})))
    if kind == "object":
        extra = schema.get("additionalProperties", True)
        return ("map", _shape(extra) if isinstance(extra, dict) else "any")
    if kind == "string" and schema.get("format") == "date-time":
        return "date-time"
    if kind == "string" and (choices := CHOICES.match(schema.get("pattern", ""))):
        return ("enum", frozenset(choices.group(1).split("|")))
    return kind or "any"


def _without_null(shape: Any) -> Any:
    """A parameter's type with `null` taken out: the SDK's None means "not sent"."""
    if isinstance(shape, tuple) and shape[0] == "union":
        rest = shape[1] - {"null"}
        return next(iter(rest)) if len(rest) == 1 else ("union", rest)
    return shape


def _sdk_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template=REF + "{model}")


def _differences(name: str, model: type[BaseModel]) -> list[str]:
    theirs = _document()["components"]["schemas"][name]
    ours = _sdk_schema(model)
    problems = []
    their_fields, our_fields = theirs.get("properties", {}), ours.get("properties", {})
    for field in sorted(their_fields.keys() - our_fields.keys()):
        problems.append(f"{name}.{field}: in the document, not in the SDK")
    for field in sorted(our_fields.keys() - their_fields.keys()):
        problems.append(f"{name}.{field}: in the SDK, not in the document")
    for field in sorted(their_fields.keys() & our_fields.keys()):
        if _shape(their_fields[field]) != _shape(our_fields[field]):
            problems.append(
                f"{name}.{field}: {_shape(their_fields[field])} in the document, "
                f"{_shape(our_fields[field])} in the SDK"
            )
    # A discriminator's constant may default in the SDK (`HmacSignature(header=...)`).
    constants = {f for f, s in our_fields.items() if "const" in s}
    their_required, our_required = set(theirs.get("required", [])), set(ours.get("required", []))
    for field in sorted((their_required ^ our_required) - constants):
        where = "the document" if field in their_required else "the SDK"
        problems.append(f"{name}.{field}: required in {where} only")
    if (
        theirs.get("additionalProperties") is False
        and ours.get("additionalProperties") is not False
    ):
        problems.append(f"{name}: the gateway refuses unknown fields, the SDK model does not")
    return problems


def test_every_operation_of_the_api_is_in_the_sdk() -> None:
    theirs = {
        (method.upper(), path)
        for path, methods in _document()["paths"].items()
        for method in methods
    }
    ours = set(_operations())
    assert sorted(theirs - ours - NOT_IN_SDK) == [], "operations the SDK lacks"
    assert sorted(ours - theirs) == [], "SDK operations the gateway does not have"


def test_each_operation_has_the_documents_parameters_body_and_answer() -> None:
    problems = []
    paths = _document()["paths"]
    for (method, path), (name, operation) in sorted(_operations().items()):
        spec = paths[path][method.lower()]
        route = operation.route
        body = spec.get("requestBody", {}).get("content", {}).get("application/json", {})
        body_name = _ref_name(body.get("schema"))
        if body_name != (route.body.__name__ if route.body else None):
            problems.append(f"{name}: body {body_name} in the document, {route.body} in the SDK")
        contents = [
            response.get("content") or {}
            for status, response in sorted(spec["responses"].items())
            if status.startswith("2")
        ]
        streamed = "text/event-stream" in contents[0]
        if streamed != isinstance(operation, Stream):
            problems.append(f"{name}: server-sent events in one of the document and the SDK")
        schema = contents[0].get("application/json", {}).get("schema")
        answer = _ref_name(schema) if schema else None
        if not streamed and answer != _component_name(route.returns):
            problems.append(f"{name}: answers {answer} in the document, {route.returns} in the SDK")

        params = inspect.signature(operation.build).parameters
        named = {p for p, v in params.items() if v.kind is not v.VAR_KEYWORD} - {"self"}
        takes_more = any(v.kind is v.VAR_KEYWORD for v in params.values())
        expected = {param["name"].lower().replace("-", "_") for param in spec.get("parameters", [])}
        if route.body is not None and name.rsplit(".", 1)[-1] in WHOLE_BODY:
            expected.add(WHOLE_BODY[name.rsplit(".", 1)[-1]])
        elif route.body is not None:
            fields = {f.alias or n for n, f in route.body.model_fields.items()}
            extra = named - expected - fields
            if extra:
                problems.append(f"{name}: {sorted(extra)} are not body fields")
            expected |= fields if not takes_more else (named & fields)
        if named != expected:
            problems.append(
                f"{name}: parameters {sorted(named)}, the document's {sorted(expected)}"
            )
        hints = typing.get_type_hints(operation.build)
        for param in spec.get("parameters", []):
            ours = hints.get(param["name"].lower().replace("-", "_"))
            if ours is None:
                continue
            theirs_shape = _without_null(_shape(param["schema"]))
            ours_shape = _without_null(_shape(TypeAdapter(ours).json_schema()))
            if theirs_shape != ours_shape:
                problems.append(
                    f"{name}: {param['name']} is {theirs_shape} in the document, "
                    f"{ours_shape} in the SDK"
                )
    assert problems == []


def test_every_model_matches_its_schema_in_the_document() -> None:
    components = _document()["components"]["schemas"]
    sdk_models = {
        name: value
        for name, value in vars(models).items()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == models.__name__
        and name in components
    }
    pages = {
        _component_name(op.route.returns): op.route.returns
        for _, op in _operations().values()
        if getattr(op.route.returns, "__pydantic_generic_metadata__", {}).get("args")
    }
    missing = components.keys() - sdk_models.keys() - pages.keys() - SCHEMAS_NOT_IN_SDK
    assert sorted(missing) == [], "schemas of the document the SDK has no model for"
    problems = [
        p for name, model in {**sdk_models, **pages}.items() for p in _differences(name, model)
    ]
    assert problems == []


def test_the_drift_check_sees_a_missing_field() -> None:
    class EventCreate(models.RequestModel):
        type: str

    assert "EventCreate.data: in the document, not in the SDK" in _differences(
        "EventCreate", EventCreate
    )
