"""Checking a request against Stripe's OpenAPI document the way Stripe reads it.

Stripe's document describes arrays and objects in the query as ``deepObject`` parameters and
reads them in its own form encoding (``expand[]=a``, ``expand[0]=a``, ``created[gt]=1``), which
generic OpenAPI validators do not parse. So this reads the query as Stripe does, then checks
each parameter's value against its schema with an OpenAPI 3.0 schema validator, and refuses,
as Stripe does, a parameter the operation does not declare.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30Validator

SPEC = Path(__file__).parent / "openapi" / "spec3.trimmed.json"
_KEY = re.compile(r"^([^\[\]]+)(?:\[([^\[\]]*)\])?$")


class StripeDocument:
    def __init__(self, path: Path = SPEC) -> None:
        self.spec = json.loads(path.read_text())

    def problems(
        self, method: str, path: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> list[str]:
        """What Stripe would refuse in this request (empty when nothing)."""
        operation, path_params = self._operation(method.lower(), path)
        if operation is None:
            return [f"{method} {path}: no such operation in Stripe's document"]
        found: list[str] = []
        auth = headers.get("Authorization", "")
        if not auth.startswith(("Bearer ", "Basic ")):
            found.append("no credentials (bearerAuth or basicAuth)")
        declared = {p["name"]: p for p in operation.get("parameters", [])}
        for name, value in path_params.items():
            found += _check(declared.get(name), name, value)
        for name, value in _parse(query).items():
            parameter = declared.get(name)
            if parameter is None or parameter["in"] != "query":
                found.append(f"unknown parameter {name!r}")
                continue
            found += _check(parameter, name, value)
        for name, parameter in declared.items():
            if parameter.get("required") and parameter["in"] == "query" and name not in query:
                found.append(f"missing required parameter {name!r}")
        return found

    def _operation(self, method: str, path: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
        for template, item in self.spec["paths"].items():
            pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
            match = re.match(pattern, path)
            if match and method in item:
                return item[method], match.groupdict()
        return None, {}


def _parse(query: Mapping[str, list[str]]) -> dict[str, Any]:
    """Stripe's form encoding: ``a=1``, ``a[]=1`` / ``a[0]=1`` (arrays), ``a[k]=1`` (objects)."""
    parsed: dict[str, Any] = {}
    for key, values in query.items():
        match = _KEY.match(key)
        if match is None:
            parsed[key] = values[-1]
            continue
        name, inner = match.groups()
        if inner is None:
            parsed[name] = values[-1]
        elif inner == "" or inner.isdigit():
            parsed.setdefault(name, []).extend(values)
        else:
            parsed.setdefault(name, {})[inner] = values[-1]
    return parsed


def _check(parameter: Mapping[str, Any] | None, name: str, value: Any) -> list[str]:
    if parameter is None:
        return [f"unknown parameter {name!r}"]
    schema = parameter.get("schema", {})
    errors = [
        f"{name}: {error.message}"
        for error in OAS30Validator(schema).iter_errors(_typed(schema, value))
    ]
    return errors[:1]


def _typed(schema: Mapping[str, Any], value: Any) -> Any:
    """Query text as the schema's type, where it reads as one (else left as text, to fail)."""
    options = [schema, *schema.get("anyOf", [])]
    for option in options:
        kind = option.get("type")
        if isinstance(value, dict) and kind == "object":
            properties = option.get("properties", {})
            return {k: _typed(properties.get(k, {}), v) for k, v in value.items()}
        if isinstance(value, list) and kind == "array":
            return [_typed(option.get("items", {}), v) for v in value]
        if isinstance(value, str) and kind == "integer" and re.fullmatch(r"-?\d+", value):
            return int(value)
        if isinstance(value, str) and kind == "boolean" and value in ("true", "false"):
            return value == "true"
    return value
