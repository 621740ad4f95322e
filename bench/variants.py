"""`python bench/variants.py CHANGES gateway ...`: the real gateway command with proposed changes applied
in-process, to measure a recommendation before it is made in mofaclaw/ (`--variant` in bench/README.md).

CHANGES joins any of these with "+":
  uvloop       the gateway's event loop is uvloop instead of asyncio's default (the gateway does this
               itself since commit a01084e: kept to measure older commits and as the pattern for the next)
  aiohttp      the provider's openai client on the SDK's aiohttp transport (`openai.DefaultAioHttpClient`)
               instead of httpx2/httpcore2

Two earlier changes measured this way and since made in mofaclaw/ (commits a6926e0 and 7947346) are gone
from here: TCP_NODELAY on the listening socket, and posting the body without the openai SDK's transform.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any


def _uvloop() -> None:
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _aiohttp() -> None:
    import openai

    base = openai.AsyncOpenAI

    class AioHttpOpenAI(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("http_client", openai.DefaultAioHttpClient())
            super().__init__(**kwargs)

    openai.AsyncOpenAI = AioHttpOpenAI  # type: ignore[misc]


CHANGES: dict[str, Callable[[], None]] = {"uvloop": _uvloop, "aiohttp": _aiohttp}
VARIANTS = tuple(CHANGES)


def parse(variant: str) -> list[str]:
    """The changes named in "a+b"; ValueError for an unknown one."""
    names = [n for n in variant.split("+") if n]
    unknown = [n for n in names if n not in CHANGES]
    if unknown or not names:
        raise ValueError(f"unknown variant {variant!r}: join any of {', '.join(VARIANTS)} with '+'")
    return names


def main() -> None:
    try:
        names = parse(sys.argv.pop(1))
    except (ValueError, IndexError) as exc:
        sys.exit(str(exc))
    for name in names:
        CHANGES[name]()
    from mofaclaw.cli.app import main as mofaclaw

    sys.argv[0] = "mofaclaw"
    mofaclaw()


if __name__ == "__main__":
    main()
