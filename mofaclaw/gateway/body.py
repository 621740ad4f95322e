"""Reads a request body as JSON that is safe to hand on: UTF-8, bounded nesting and numbers, no NaN,
no lone surrogates. Anything else is a 400 before any work starts."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from mofaclaw.gateway.errors import APIError

MAX_DEPTH = 64  # OpenAI-shaped bodies nest a handful of levels; a JSON schema in a field maybe twenty
MAX_INT_DIGITS = 40  # far beyond any 64-bit field; int() of thousands of digits is slow and useless here

# A \uD800-\uDFFF escape: the only way a JSON text can carry a surrogate (raw UTF-8 cannot).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _Refused(Exception):
    pass


def parse_json_body(raw: bytes) -> Any:
    """The body as Python values, or an APIError(400) saying what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"The request body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        data = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError:
        raise _too_deep() from None
    except json.JSONDecodeError as exc:
        raise APIError(400, f"The request body is not valid JSON: {exc}") from None
    except _Refused as exc:
        raise APIError(400, f"The request body is not acceptable JSON: {exc}") from None
    _check_tree(data, check_strings=_SURROGATE_ESCAPE.search(raw) is not None)
    return data


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is out of range")
    return value


def _constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _check_tree(data: Any, check_strings: bool) -> None:
    """Depth and (when the text had surrogate escapes) string validity, walked without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise _too_deep()
            for key, value in node.items():
                if check_strings:
                    _check_string(key)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise _too_deep()
            stack.extend((item, depth + 1) for item in node)
        elif check_strings and isinstance(node, str):
            _check_string(node)


def _check_string(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, "The request body is not acceptable JSON: a string holds a lone UTF-16 surrogate "
                       "(\\ud800-\\udfff without its pair).") from None


def _too_deep() -> APIError:
    return APIError(400, f"The request body is not acceptable JSON: it nests deeper than {MAX_DEPTH} levels.")
