"""The agent's Markdown as Telegram HTML: what a Telegram user sees, checked with Telegram's HTML rules."""

from __future__ import annotations

import pytest
from fake_telegram import visible_text

from mofaclaw.channels.telegram_format import LIMIT, split_message, to_html

HOSTILE = [
    'Hi <script>alert("x")</script> there',
    "**unbalanced bold and *half italic",
    "<b>injected</b> & <i>more</i> </b> <pre>",
    "[click](javascript:alert(1)) and [ok](https://example.com/?a=1&b=<2>)",
    "`code <b>` ``` unterminated fence\n<tg-spoiler>",
    "# Heading with <u>\n\n> quote **bold\n\n- item <a href='x'>\n  - nested & deep",
    "| a | <b> |\n|---|---|\n| 1 | 2 |",
    "&amp; &lt; &#x3c; &bogus;",
    "```python\nif a < b and c > d: print('<html>')\n```",
    "![img <x>](https://x.test/a.png) ~~strike <s>~~",
]


@pytest.mark.parametrize("markdown", HOSTILE)
def test_hostile_markdown_renders_to_html_telegram_accepts(markdown: str) -> None:
    for chunk in split_message(markdown):
        seen = visible_text(chunk.html, "HTML")  # raises where Telegram would answer 400
        assert len(seen) <= LIMIT
    assert "<script" not in to_html(HOSTILE[0])
    assert 'href="javascript' not in to_html(HOSTILE[3])


def test_markup_is_kept_and_injected_tags_are_text() -> None:
    html = to_html("**bold** *it* `x<y` [site](https://example.com) <b>not bold</b>")
    assert "<b>bold</b>" in html and "<i>it</i>" in html and "<code>x&lt;y</code>" in html
    assert '<a href="https://example.com">site</a>' in html
    assert visible_text(html, "HTML") == "bold it x<y site <b>not bold</b>"


def test_code_block_keeps_its_language_and_text() -> None:
    html = to_html("```python\nprint('<hi>')\n```")
    assert html == '<pre><code class="language-python">print(\'&lt;hi&gt;\')</code></pre>'


def paragraphs(n: int, words: int) -> list[str]:
    return [" ".join(f"p{p:02d}w{w:03d}" for w in range(words)) for p in range(n)]


def test_long_answer_splits_between_paragraphs() -> None:
    paras = paragraphs(12, 90)  # ~800 characters each: about five messages
    chunks = split_message("\n\n".join(paras))
    assert len(chunks) > 1
    seen = [visible_text(c.html, "HTML") for c in chunks]
    assert all(len(s) <= LIMIT for s in seen)
    for para in paras:  # no paragraph is cut in two
        assert sum(para in s for s in seen) == 1
    assert " ".join(" ".join(seen).split()) == " ".join(paras)


def test_a_paragraph_longer_than_a_message_splits_between_words_then_anywhere() -> None:
    words = " ".join(f"w{i:04d}" for i in range(1500))  # ~9,000 characters, no paragraph break
    huge = "x" * 5000  # one "word" longer than a message
    chunks = split_message(f"{words}\n\n{huge}")
    seen = [visible_text(c.html, "HTML") for c in chunks]
    assert all(len(s) <= LIMIT for s in seen)
    assert all(len(c.text) <= LIMIT for c in chunks)
    joined = " ".join(seen)
    assert " ".join(joined.split()).startswith(words)  # every word, whole, in order
    assert joined.replace(" ", "").endswith(huge)


def test_a_long_code_block_splits_into_code_blocks_between_lines() -> None:
    code = "\n".join(f"line_{i:04d} = '{'<' * 20}'" for i in range(400))  # ~14,000 characters escaped
    chunks = split_message(f"```js\n{code}\n```")
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.html.startswith('<pre><code class="language-js">') and chunk.html.endswith("</code></pre>")
        assert len(chunk.html) <= LIMIT
        visible_text(chunk.html, "HTML")
    lines = "\n".join(visible_text(c.html, "HTML") for c in chunks).splitlines()
    assert lines == code.splitlines()
