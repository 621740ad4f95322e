"""Tokens per turn: what the agent sends the upstream on a first and a tenth turn of one conversation
(system prompt, tool schemas, history), as characters and tokens, mofaclaw beside nanobot on the same
upstream, and mofaclaw's system prompt part by part."""

from __future__ import annotations

import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

from bench.client import Connection
from bench.context import Context
from bench.load import Target, turn
from bench.servers import ROOT, Fleet, Server, gateway_config, start_gateway, start_nanobot

TURNS = 10
MESSAGES = ["hello", "what can you do?", "thanks", "tell me about today", "ok", "and tomorrow?", "fine",
            "summarise this chat", "good", "bye"]


async def run(ctx: Context) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from upstream import ScriptedUpstream  # the scripted upstream in-process: its records are the prompts

    turns = ctx.pick(TURNS, 2)
    out: dict[str, Any] = {"params": {"turns": turns, "tokenizer": _tokenizer_name(),
                                      "note": "a new home/workspace per server; one conversation; the upstream "
                                              "echoes each message. chars = JSON text of the part as sent"},
                           "results": []}
    with ScriptedUpstream(max_recorded=100) as upstream, Fleet(ctx.workdir) as fleet:
        fake = Server("direct", None, upstream.port, Path(), host=upstream.host)  # type: ignore[arg-type]
        servers = [fleet.add(start_gateway(ctx.workdir, None, gateway_config(fake.url)))]
        if ctx.nanobot:
            servers.append(fleet.add(start_nanobot(ctx.workdir, fake)))
        for server in servers:
            upstream.reset()
            connection = Connection(server.host, server.port)
            try:
                for i in range(turns):
                    await turn(connection, Target(server.name, server), MESSAGES[i % len(MESSAGES)], "tokens-1")
            finally:
                await connection.close()
            bodies = upstream.requests
            for label, body in (("first turn", bodies[0]), (f"turn {turns}", bodies[-1])):
                out["results"].append({"target": server.name, "turn": label, **_parts(body)})
            if server.name == "gateway":
                out["system_sections"] = _sections(_system(bodies[-1]))
    return out


def _system(body: dict[str, Any]) -> str:
    return "\n\n".join(str(m.get("content") or "") for m in body["messages"] if m["role"] == "system")


def _parts(body: dict[str, Any]) -> dict[str, Any]:
    messages = [m for m in body["messages"] if m["role"] != "system"]
    parts = {"system prompt": _system(body), "tool schemas": json.dumps(body.get("tools") or []) if body.get("tools")
             else "", "history": json.dumps(messages[:-1]) if messages[:-1] else "",
             "this message": json.dumps(messages[-1:])}
    measured = {name: {"chars": len(text), "tokens": _tokens(text)} for name, text in parts.items()}
    measured["total"] = {"chars": sum(p["chars"] for p in measured.values()),
                         "tokens": sum(p["tokens"] for p in measured.values())}
    return {"parts": measured, "tools": len(body.get("tools") or []), "messages": len(body["messages"])}


def _sections(system: str) -> list[dict[str, Any]]:
    """The system prompt cut at its Markdown headings, each measured."""
    pieces = re.split(r"(?m)^(?=#{1,3} )", system)
    return [{"section": (p.splitlines() or [""])[0][:60] or "(opening)", "chars": len(p), "tokens": _tokens(p)}
            for p in pieces if p.strip()]


@cache
def _vocab() -> Any:
    try:
        from llama_cpp import Llama

        from mofaclaw.providers.local import bundled_model_path
    except ImportError:
        return None
    path = bundled_model_path()
    return None if path is None else Llama(model_path=str(path), vocab_only=True, verbose=False)


def _tokenizer_name() -> str:
    return "SmolLM2 (bundled GGUF, vocab only)" if _vocab() is not None else "none (chars / 4)"


def _tokens(text: str) -> int:
    if not text:
        return 0
    vocab = _vocab()
    return len(vocab.tokenize(text.encode(), add_bos=False, special=False)) if vocab else round(len(text) / 4)
