"""The web chat page in a real headless Chromium, against the real gateway and the scripted upstream."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gateway_harness import GatewayProcess
from upstream import Hang, Reply, ScriptedUpstream

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "web-chat.png"
TIMEOUT_MS = 10_000

StartGateway = Callable[..., GatewayProcess]
Page = playwright_api.Page
expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Console:
    """Console errors and uncaught exceptions of a page: a working page has none."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


def open_page(browser: playwright_api.Browser, gateway: GatewayProcess, **options: object
              ) -> tuple[Page, Console]:
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **options})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console = Console(page)
    page.goto(gateway.base + "/")
    return page, console


def send(page: Page, text: str) -> None:
    # As a user would: wait until the previous reply has ended (Send is back in place of Stop), then type.
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def test_a_turn_streams_shows_its_tool_and_renders_markdown(
    browser: playwright_api.Browser, start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    gateway = start_gateway()
    upstream.tool_calls([("list_dir", {"path": "."})])
    answer = ("Your workspace holds **three** files. To list them yourself:\n\n"
              "```bash\nls -la ~/.mofaclaw/workspace\n```\n\nSee the `README` for more.")
    upstream.reply(answer)
    upstream.token_delay = 0.05
    page, console = open_page(browser, gateway)

    send(page, "What is in my workspace?")
    reply = page.locator(".msg.assistant").last
    # The tool line shows while the turn runs, naming the tool and its argument.
    expect(reply.locator(".tools li")).to_have_text("↳ list_dir .")
    # Streaming: the answer is visible in part, as plain text, before it is complete.
    streaming = reply.locator(".body.streaming")
    expect(streaming).to_contain_text("Your workspace")
    assert "README" not in streaming.inner_text()
    # Complete: rendered Markdown with a code block and its copy button; the Stop button is gone.
    expect(reply.locator("pre code")).to_have_text("ls -la ~/.mofaclaw/workspace\n")
    expect(reply.locator("strong")).to_have_text("three")
    expect(reply.get_by_role("button", name="Copy code")).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    # The conversation is listed, titled by its first message.
    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav.get_by_role("listitem")).to_have_count(1)
    title = nav.get_by_role("button", name="What is in my workspace?", exact=True)
    expect(title).to_have_attribute("aria-current", "page")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))  # the README's picture

    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    reply.get_by_role("button", name="Copy code").click()
    expect(reply.get_by_role("button", name="Copy code")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "ls -la ~/.mofaclaw/workspace\n"
    assert console.errors == []


def test_stop_and_escape_cancel_the_turn_and_its_upstream_call(
    browser: playwright_api.Browser, start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    gateway = start_gateway()
    upstream.enqueue(Hang(after_chunks=1, then=Reply("never shown")), Hang(after_chunks=1, then=Reply("nor this")))
    page, console = open_page(browser, gateway)

    send(page, "tell me a long story")
    expect(page.locator(".msg.assistant .body")).to_have_text("never")  # the first word, then the upstream hangs
    page.get_by_role("button", name="Stop").click()
    upstream.wait_until_sync(lambda: upstream.disconnects >= 1, what="the upstream call cancelled by Stop")
    expect(page.locator(".msg.assistant .note")).to_have_text("Stopped. This reply was not saved.")

    send(page, "another one")
    expect(page.locator(".msg.assistant .body").last).to_have_text("nor")
    page.keyboard.press("Escape")
    upstream.wait_until_sync(lambda: upstream.disconnects >= 2, what="the upstream call cancelled by Esc")
    expect(page.locator(".msg.assistant .note")).to_have_count(2)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    assert console.errors == []


def test_conversations_new_switch_rename_delete_and_the_terminals_own(
    browser: playwright_api.Browser, start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    gateway = start_gateway()
    page, console = open_page(browser, gateway)
    # The terminal's conversation (session cli:direct) is one of the list, next to the page's.
    api = page.context.request
    response = api.post(gateway.url + "/chat/completions", data={
        "model": "mofaclaw", "conversation_id": "cli:direct",
        "messages": [{"role": "user", "content": "hello from the terminal"}]})
    assert response.ok, response.text()
    nav = page.get_by_role("navigation", name="Conversations")

    send(page, "first topic")
    expect(page.locator(".msg.assistant .body")).to_have_text("echo: first topic")
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(".msg")).to_have_count(0)
    send(page, "second topic")
    expect(page.locator(".msg.assistant .body")).to_have_text("echo: second topic")
    expect(nav.get_by_role("listitem")).to_have_count(3)

    nav.get_by_role("button", name="hello from the terminal", exact=True).click()
    expect(page.locator(".msg.assistant .body")).to_have_text("echo: hello from the terminal")
    nav.get_by_role("button", name="first topic", exact=True).click()
    expect(page.locator(".msg .body")).to_have_text(["first topic", "echo: first topic"])

    nav.get_by_role("button", name="Rename “first topic”").click()
    title = nav.get_by_role("textbox", name="New title (Enter saves, Escape cancels)")
    title.fill("Renamed plans")
    title.press("Enter")
    expect(nav.get_by_role("button", name="Renamed plans", exact=True)).to_have_attribute("aria-current", "page")

    page.once("dialog", lambda dialog: dialog.accept())
    nav.get_by_role("button", name="Delete “second topic”").click()
    expect(nav.get_by_role("listitem")).to_have_count(2)
    expect(nav.get_by_role("button", name="second topic", exact=True)).to_have_count(0)
    # The API sees what the page did.
    titles = [c["title"] for c in api.get(gateway.url + "/conversations").json()["data"]]
    assert sorted(titles) == ["Renamed plans", "hello from the terminal"]
    assert console.errors == []


def test_sign_in_with_a_key_that_never_leaves_the_tab(
    browser: playwright_api.Browser, start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    key = "sk-web-test-key-31337"
    gateway = start_gateway('[gateway]\napi_keys = ["sk-web-test-key-31337"]\n')
    page, console = open_page(browser, gateway)

    key_box = page.get_by_label("API key")
    expect(key_box).to_have_attribute("type", "password")
    key_box.fill("sk-wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That API key was not accepted; enter one of gateway.api_keys.")
    # The only console error is the browser's note of that 401.
    assert [e for e in console.errors if "401" not in e] == []
    console.errors.clear()

    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    send(page, "hi with a key")
    expect(page.locator(".msg.assistant .body")).to_have_text("echo: hi with a key")
    assert upstream.requests[-1]["messages"][-1]["content"] == "hi with a key"

    assert key not in page.url
    assert key not in page.content()
    assert page.context.cookies() == []
    assert page.evaluate("JSON.stringify(localStorage)").find(key) == -1
    assert page.evaluate("sessionStorage.getItem('mofaclaw.apiKey')") == key
    assert key not in gateway.output
    assert console.errors == []


def test_html_and_scripts_in_the_answer_do_nothing(
    browser: playwright_api.Browser, start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    gateway = start_gateway()
    upstream.reply('Look: <script>alert("script")</script> <img src=x onerror="alert(\'img\')"> '
                   "[click me](javascript:alert('link')) and [safe](https://example.org)")
    page, console = open_page(browser, gateway)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    send(page, "say something nasty")
    body = page.locator(".msg.assistant .body")
    expect(body.get_by_role("link", name="safe")).to_have_attribute("href", "https://example.org")
    expect(body).to_contain_text('<script>alert("script")</script>')  # shown as text, not run
    assert body.locator("script, img, iframe").count() == 0
    hrefs = body.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org"]
    page.reload()  # the stored answer, rendered again from history
    expect(page.locator(".msg.assistant .body").get_by_role("link", name="safe")).to_be_visible()
    assert page.locator(".msg.assistant .body").locator("script, img").count() == 0
    assert dialogs == []

    # A failed turn is one short line saying what failed.
    upstream.fail(400, "the model refused the request")
    send(page, "and now fail")
    error = page.locator(".msg.assistant").last.get_by_role("alert")
    expect(error).to_contain_text("Error: ")
    expect(error).to_contain_text("the model refused the request")
    assert "\n" not in error.inner_text() and len(error.inner_text()) <= 210
    assert console.errors == []


def test_phone_size_dark_theme_and_keyboard(
    browser: playwright_api.Browser, start_gateway: StartGateway, upstream: ScriptedUpstream
) -> None:
    gateway = start_gateway()
    upstream.enqueue(lambda body: Reply("echo: " + body["messages"][-1]["content"]))
    upstream.reply("A long line:\n\n```\n" + "x = 1; " * 60 + "\n```\n\nand a long word " + "a" * 200)
    page, console = open_page(browser, gateway, viewport={"width": 390, "height": 800}, color_scheme="dark",
                              is_mobile=True, has_touch=True)
    box = page.get_by_role("textbox", name="Message")
    box.fill("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    box.press("Enter")
    expect(page.locator(".msg.user .body")).to_have_text("line one\nline two")
    expect(page.locator(".msg.assistant .body")).to_have_text("echo: line one\nline two")
    send(page, "show me something wide")
    expect(page.locator(".msg.assistant pre")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 23, 26)"  # the dark palette, from the system preference
    page.get_by_role("button", name="Use light theme").click()
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"
    # On a phone the conversation list is behind a button.
    nav = page.get_by_role("navigation", name="Conversations")
    expect(nav).to_be_hidden()
    page.get_by_role("button", name="Conversations").click()
    expect(nav.get_by_role("button", name="New chat")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    # Every control says what it does, to a screen reader as well.
    names = page.locator("button:visible, textarea:visible, input:visible").evaluate_all(
        "els => els.map(e => e.getAttribute('aria-label') || e.labels?.[0]?.textContent || e.textContent.trim())")
    assert all(names) and {"New chat", "Send", "Message", "Use dark theme", "Conversations"} <= set(names)
    assert any(n.startswith("Rename “") for n in names) and any(n.startswith("Delete “") for n in names)
    assert console.errors == []
