"""Markdown to safe HTML for the web page: the agent's output is untrusted, so it is rendered here, once.

markdown-it-py with raw HTML off turns the text into HTML; nh3 (the Ammonia sanitizer) then keeps only
the tags and attributes listed below and only http, https and mailto links. Images are not rendered:
an image from the model would make the browser fetch any URL the model names.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

TAGS = frozenset({
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s", "code", "pre",
    "blockquote", "ul", "ol", "li", "a", "table", "thead", "tbody", "tr", "th", "td",
})
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES = frozenset({"http", "https", "mailto"})


@cache
def _markdown() -> MarkdownIt:
    # Imported on the first render, not with the gateway: most gateways never serve the page (~40 ms, ~2.4 MB).
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]).disable("image")


def render(text: str) -> str:
    """Sanitized HTML for a Markdown text; links open in a new tab and leak no referrer."""
    import nh3

    html = _markdown().render(text)
    return nh3.clean(html, tags=set(TAGS), attributes={k: set(v) for k, v in ATTRIBUTES.items()},
                     url_schemes=set(URL_SCHEMES), link_rel="noopener noreferrer nofollow",
                     set_tag_attribute_values={"a": {"target": "_blank"}})
