"""Hides mofaclaw's own environment from the commands it runs: /proc/PID/environ shows no secrets.

The kernel shows the environment a process was started with (the block between env_start and
env_end in /proc/PID/stat), not os.environ: deleting a variable from os.environ leaves its value
there for any process allowed to read the file, and root always is. So the values of secret
variables are overwritten in that block itself, and put back into the C environment as fresh
copies, which the kernel does not show; os.environ is left alone, so the provider key fallback and
skills that check a variable keep working. Marking the process non-dumpable additionally closes
/proc/PID/environ and /proc/PID/mem to processes of the same (non-root) user.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_PR_SET_DUMPABLE = 4
# Fields 50 and 51 of /proc/PID/stat (since Linux 3.5), counted after the ")" that ends the name.
_ENV_START_FIELD = 50 - 3
_lock = threading.Lock()

SecretTest = Callable[[str, str], bool]


def guard_process(is_secret: SecretTest) -> None:
    """Make this process's secret environment variables unreadable to its child processes."""
    with _lock:
        _set_not_dumpable()
        try:
            _clear_secret_values(is_secret)
        except (OSError, ValueError) as exc:  # not Linux, or a layout this code does not recognise
            log.debug("could not clear secrets from the process environment block: %s", exc)


def _set_not_dumpable() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    except (OSError, AttributeError) as exc:
        log.debug("prctl(PR_SET_DUMPABLE) is not available: %s", exc)


def _clear_secret_values(is_secret: SecretTest) -> None:
    with open("/proc/self/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    start, end = int(fields[_ENV_START_FIELD]), int(fields[_ENV_START_FIELD + 1])
    if not 0 < start < end:
        raise ValueError("no environment block")
    block = ctypes.string_at(start, end - start)
    with open("/proc/self/environ", "rb") as f:
        if f.read() != block:  # the addresses are not what the kernel shows: write nothing
            raise ValueError("the environment block does not match /proc/self/environ")
    offset = 0
    for entry in block.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if sep and value and is_secret(name.decode(errors="replace"), value.decode(errors="replace")):
            _clear(start + offset + len(name) + 1, len(value), name)
        offset += len(entry) + 1


def _clear(address: int, length: int, name: bytes) -> None:
    key = os.fsdecode(name)
    current = os.environ.get(key)
    # The C environment may still point into the block for this variable: give it its own copy
    # first, so nothing that reads it through getenv() sees the cleared bytes.
    if current is not None:
        os.putenv(key, current)
    ctypes.memset(address, 0, length)
