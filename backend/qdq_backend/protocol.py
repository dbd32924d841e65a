"""Checks a message against protocol.schema.json, the one home of the backend protocol (docs/backend-protocol.md).

The subset of JSON Schema the schema uses (type, enum, properties, required, additionalProperties, items, anyOf,
$ref) interpreted at run time; the TypeScript side has the same checks (server/src/pipeline/backendProtocol.ts).
A malformed message is a `protocol` error that names the field, never a crash inside an algorithm.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.schema.json")

_schema: Optional[Dict[str, Any]] = None


def schema() -> Dict[str, Any]:
    global _schema
    if _schema is None:
        with open(SCHEMA_PATH, encoding="utf-8") as handle:
            _schema = json.load(handle)
    return _schema


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _matches(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    return actual == expected or (expected == "number" and actual == "integer")


def violation(name: str, value: Any, path: str, check_enums: bool = True) -> Optional[str]:
    """The first problem in `value` against definition `name`, as `path: what is wrong`; None when it conforms."""
    node = schema()["definitions"].get(name)
    if node is None:
        return f"{path}: no schema definition {name}"
    return _check(node, value, path, check_enums)


def _check(node: Dict[str, Any], value: Any, path: str, enums: bool) -> Optional[str]:
    if "$ref" in node:
        return violation(node["$ref"].split("/")[-1], value, path, enums)
    if "anyOf" in node:
        problems = [_check(n, value, path, enums) for n in node["anyOf"]]
        return None if any(p is None for p in problems) else problems[0]
    if "enum" in node:
        if enums and value not in node["enum"]:
            return f"{path}: expected one of {', '.join(json.dumps(v) for v in node['enum'])}, got {json.dumps(value)}"
        if not enums and not isinstance(value, str):
            return f"{path}: expected a string, got {_type_of(value)}"
        return None
    if "type" in node:
        types: List[str] = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(_matches(value, t) for t in types):
            return f"{path}: expected {' or '.join(types)}, got {_type_of(value)}"
    if isinstance(value, (list, tuple)) and "items" in node:
        for index, item in enumerate(value):
            problem = _check(node["items"], item, f"{path}[{index}]", enums)
            if problem:
                return problem
    if isinstance(value, dict) and ("properties" in node or "required" in node):
        return _check_object(node, value, path, enums)
    return None


def _check_object(node: Dict[str, Any], value: Dict[str, Any], path: str, enums: bool) -> Optional[str]:
    for key in node.get("required", []):
        if key not in value:
            return f"{path}.{key}: missing"
    props = node.get("properties", {})
    for key, item in value.items():
        if key in props:
            problem = _check(props[key], item, f"{path}.{key}", enums)
            if problem:
                return problem
        elif node.get("additionalProperties") is False:
            return f"{path}.{key}: not a field of this message"
    return None


def validate(name: str, value: Any, path: str, check_enums: bool = True) -> None:
    """Raise a `protocol` QdqError naming the field when `value` does not conform to definition `name`."""
    problem = violation(name, value, path, check_enums)
    if problem is not None:
        from .errors import QdqError  # errors takes its kinds from protocol_types, which imports this module

        raise QdqError(
            "protocol",
            f"malformed message: {problem}",
            "the qdq pipeline and its Python backend disagree on the protocol (a bug in qdq); reinstall qdq, "
            "and report it if it repeats",
        )


def to_json(value: Any) -> Any:
    """A generated params dataclass (protocol_types.py) back to its JSON form, absent fields left out: what the
    backend hands on to a process of its own (the torchrun workers), which parses it again with from_json."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return {name: to_json(item) for name, item in fields if item is not None}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value
