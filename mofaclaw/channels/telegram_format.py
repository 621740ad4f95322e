"""The agent's Markdown as Telegram-safe HTML, cut into messages Telegram accepts (4,096 characters).

markdown-it-py parses (raw HTML disabled, so `<script>` in an answer is text, never markup); the
renderer below emits only the tags Telegram's HTML mode allows, escaping everything else, so any
answer, however broken its Markdown, renders to HTML Telegram can parse. Each chunk also carries its
plain Markdown source: the fallback should Telegram refuse the HTML anyway.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

LIMIT = 4096
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")
_LANGUAGE = re.compile(r"[\w+#.-]{1,32}")
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["strikethrough", "table"])


@dataclass(frozen=True, slots=True)
class Chunk:
    html: str  # for parse_mode=HTML
    text: str  # the same part of the answer as plain text


def to_html(markdown: str) -> str:
    return "\n\n".join(_block(node) for node in _parse(markdown).children).strip()


def split_message(markdown: str, limit: int = LIMIT) -> list[Chunk]:
    """The answer as messages of at most `limit` characters (HTML and plain text both), cut between
    paragraphs or code blocks, else between words, else anywhere."""
    lines = markdown.splitlines()
    pieces: list[Chunk] = []
    for node in _parse(markdown).children:
        start, end = node.map or (0, len(lines))
        source = "\n".join(lines[start:end]).strip()
        rendered = _block(node).strip()
        if len(rendered) <= limit and len(source) <= limit:
            pieces.append(Chunk(rendered, source))
        elif node.type in ("fence", "code_block"):
            pieces += _split_code(node, limit)
        else:
            pieces += [Chunk(html.escape(part, quote=False), part) for part in _split_words(source, limit)]
    return _pack(pieces, limit) or [Chunk(html.escape(markdown.strip() or markdown), markdown)]


def _parse(markdown: str) -> SyntaxTreeNode:
    return SyntaxTreeNode(_md.parse(markdown))


def _pack(pieces: list[Chunk], limit: int) -> list[Chunk]:
    """Join consecutive pieces into as few messages as fit."""
    out: list[Chunk] = []
    for piece in pieces:
        if not piece.html and not piece.text:
            continue
        fits = out and max(len(out[-1].html) + len(piece.html), len(out[-1].text) + len(piece.text)) + 2 <= limit
        if fits:
            out[-1] = Chunk(f"{out[-1].html}\n\n{piece.html}", f"{out[-1].text}\n\n{piece.text}")
        else:
            out.append(piece)
    return out


def _split_words(text: str, limit: int) -> list[str]:
    """At whitespace; a word longer than a message is cut where the message ends. Escaping can only
    lengthen a part, so parts are sized by their escaped length."""
    parts: list[str] = []
    current = ""
    for word in re.findall(r"\S+\s*", text):
        while _escaped_len(current + word) > limit:
            if current:
                parts.append(current.rstrip())
                current = ""
            else:
                cut = _fit(word, limit)
                parts.append(word[:cut])
                word = word[cut:]
        current += word
    if current.strip():
        parts.append(current.rstrip())
    return parts


def _fit(text: str, limit: int) -> int:
    """The longest prefix of `text` whose escaped form fits in `limit`."""
    cut = min(len(text), limit)
    while _escaped_len(text[:cut]) > limit:
        cut -= 1
    return max(cut, 1)


def _escaped_len(text: str) -> int:
    return len(html.escape(text, quote=False))


def _split_code(node: SyntaxTreeNode, limit: int) -> list[Chunk]:
    """A long code block as several code blocks, cut between lines (or inside a line too long)."""
    language = _language(node)
    opening, closing = _pre_tags(language)
    fence = "```"
    room = limit - len(opening) - len(closing)
    room_text = limit - len(fence) * 2 - len(language) - 2
    parts: list[str] = []
    current = ""
    for line in node.content.splitlines(keepends=True):
        while line:
            if _escaped_len(current + line) <= room and len(current + line) <= room_text:
                current, line = current + line, ""
            elif current:
                parts.append(current)
                current = ""
            else:
                cut = min(_fit(line, room), room_text)
                parts.append(line[:cut])
                line = line[cut:]
    if current:
        parts.append(current)
    return [Chunk(f"{opening}{html.escape(p.rstrip(chr(10)), quote=False)}{closing}",
                  f"{fence}{language}\n{p.rstrip(chr(10))}\n{fence}") for p in parts]


def _language(node: SyntaxTreeNode) -> str:
    info = (node.info or "").split(maxsplit=1)[0] if node.type == "fence" and node.info else ""
    return info if _LANGUAGE.fullmatch(info) else ""


def _pre_tags(language: str) -> tuple[str, str]:
    if language:
        return f'<pre><code class="language-{html.escape(language)}">', "</code></pre>"
    return "<pre>", "</pre>"


def _block(node: SyntaxTreeNode, depth: int = 0) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline_children(node)
    if kind == "heading":
        return f"<b>{_inline_children(node)}</b>"
    if kind in ("fence", "code_block"):
        opening, closing = _pre_tags(_language(node))
        return f"{opening}{html.escape(node.content.rstrip(chr(10)), quote=False)}{closing}"
    if kind == "blockquote":
        return f"<blockquote>{_blocks(node, depth)}</blockquote>"
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, depth)
    if kind == "hr":
        return "——————"
    if kind == "table":
        return _table(node)
    if kind == "inline":
        return _inline(node)
    return html.escape(node.content or "", quote=False)


def _blocks(node: SyntaxTreeNode, depth: int) -> str:
    return "\n\n".join(_block(child, depth) for child in node.children)


def _list(node: SyntaxTreeNode, depth: int) -> str:
    start = int(node.attrs.get("start", 1) or 1)
    lines = []
    for number, item in enumerate(node.children, start):
        marker = f"{number}." if node.type == "ordered_list" else "•"
        body = "\n".join(_block(child, depth + 1) for child in item.children)
        lines.append(f"{'  ' * depth}{marker} {body}")
    return "\n".join(lines)


def _table(node: SyntaxTreeNode) -> str:
    rows = []
    for section in node.children:
        for row in section.children:
            rows.append(" | ".join(_inline_children(cell) for cell in row.children))
    return "\n".join(rows)


def _inline_children(node: SyntaxTreeNode) -> str:
    return "".join(_inline(child) for child in node.children)


_WRAP = {"strong": "b", "em": "i", "s": "s"}


def _inline(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "inline":
        return _inline_children(node)
    if kind == "text":
        return html.escape(node.content, quote=False)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return f"<code>{html.escape(node.content, quote=False)}</code>"
    if kind in _WRAP:
        tag = _WRAP[kind]
        return f"<{tag}>{_inline_children(node)}</{tag}>"
    if kind == "link":
        href = str(node.attrs.get("href", ""))
        inner = _inline_children(node)
        if href.lower().startswith(_SAFE_SCHEMES):
            return f'<a href="{html.escape(href, quote=True)}">{inner}</a>'
        return inner
    if kind == "image":
        alt = html.escape(node.content or "image", quote=False)
        src = str(node.attrs.get("src", ""))
        if src.lower().startswith(("http://", "https://")):
            return f'<a href="{html.escape(src, quote=True)}">{alt}</a>'
        return alt
    return html.escape(node.content or "", quote=False)
