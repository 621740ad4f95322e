"""Validates the gateway's JSON against the schemas of OpenAI's published OpenAPI description."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

# A trimmed copy of OpenAI's published OpenAPI description (MIT, see openai-schemas.LICENSE beside it),
# made by reference/trim_openai_spec.py: the tests read nothing outside the repository.
SPEC = Path(__file__).resolve().parent / "reference" / "openai-schemas.json"


def _nullable_to_json_schema(node: Any) -> Any:
    """The description mixes OpenAPI 3.0's `nullable: true` into 3.1 schemas; make it JSON Schema."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _nullable_to_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@cache
def _components() -> dict[str, Any]:
    spec = json.loads(SPEC.read_text())
    components = _nullable_to_json_schema(spec["components"])
    # Streamed chunks carry "finish_reason": null until the last one (as OpenAI's own API does);
    # the description forgets to say it may be null.
    chunk_choice = components["schemas"]["CreateChatCompletionStreamResponse"]["properties"]["choices"]["items"]
    reason = chunk_choice["properties"]["finish_reason"]
    chunk_choice["properties"]["finish_reason"] = {"anyOf": [reason, {"type": "null"}]}
    return components


def errors(schema_name: str, instance: Any) -> list[str]:
    """Every way `instance` breaks components/schemas/<schema_name>; [] when it conforms."""
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema_name}", "components": _components()})
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
