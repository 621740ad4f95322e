"""MCP results as the text a tool result is: text, structured content, notes for media and links."""

from __future__ import annotations

import base64
import binascii
import json

import mcp_types as types

from mofaclaw.errors import ToolError


def tool_result_text(result: types.CallToolResult) -> str:
    """The text the model reads. A result the server flags as an error raises ToolError ("Error: ...")."""
    parts = [_block(block) for block in result.content]
    has_text = any(isinstance(block, types.TextContent) for block in result.content)
    if result.structured_content is not None and not has_text:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(p for p in parts if p)
    if result.is_error:
        raise ToolError(text or "the tool reported an error without saying why")
    return text or "(the tool returned nothing)"


def resource_text(result: types.ReadResourceResult) -> str:
    return "\n".join(_contents(c) for c in result.contents) or "(the resource is empty)"


def resource_list_text(server: str, resources: list[types.Resource]) -> str:
    if not resources:
        return f"MCP server '{server}' offers no resources."
    lines = [f"Resources of MCP server '{server}' (read one with its uri):"]
    for r in resources:
        about = f": {r.description}" if r.description else ""
        mime = f" ({r.mime_type})" if r.mime_type else ""
        lines.append(f"- {r.uri} — {r.name}{mime}{about}")
    return "\n".join(lines)


def _block(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        kind = "image" if isinstance(block, types.ImageContent) else "audio"
        return f"[{kind}: {block.mime_type}, {_decoded_size(block.data)} bytes, not shown to the model]"
    if isinstance(block, types.ResourceLink):
        about = f": {block.description}" if block.description else ""
        return f"[resource link {block.uri} — {block.name}{about}] (readable with mcp_read_resource)"
    if isinstance(block, types.EmbeddedResource):
        return _contents(block.resource)
    return f"[{getattr(block, 'type', 'unknown')} content not shown]"


def _contents(contents: types.TextResourceContents | types.BlobResourceContents) -> str:
    if isinstance(contents, types.TextResourceContents):
        return f"[resource {contents.uri}]\n{contents.text}"
    mime = contents.mime_type or "binary"
    return f"[resource {contents.uri}: {mime}, {_decoded_size(contents.blob)} bytes, not shown]"


def _decoded_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)
