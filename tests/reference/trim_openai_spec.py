"""Maintainer tool, not run by the tests: cuts OpenAI's published OpenAPI description down to the
component schemas the tests validate against (and everything they reference), as JSON.

    python tests/reference/trim_openai_spec.py PATH/TO/openai-openapi.yaml

rewrites tests/reference/openai-schemas.json. Add a root to ROOTS when a test needs a new schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOTS = (
    "CreateChatCompletionRequest",
    "CreateChatCompletionResponse",
    "CreateChatCompletionStreamResponse",
    "ErrorResponse",
    "ListModelsResponse",
    "Model",
    "CreateResponse",
    "Response",
    "ResponseStreamEvent",
    "ResponseItemList",
    "DeleteModelResponse",
    "ConversationResource",
    "DeletedConversationResource",
    "ConversationItemList",
)
OUT = Path(__file__).with_name("openai-schemas.json")


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node)) if node else set()
    return set()


def main(spec_path: str) -> None:
    with open(spec_path, "rb") as f:
        spec = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schemas = spec["components"]["schemas"]
    keep: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        todo += sorted(refs(schemas[name]) - keep.keys())
    out = {"info": spec["info"], "components": {"schemas": dict(sorted(keep.items()))}}
    OUT.write_text(json.dumps(out, indent=1, sort_keys=False) + "\n")
    print(f"{len(keep)} schemas -> {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main(sys.argv[1])
