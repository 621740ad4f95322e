"""What a shell command may not do and may not see: the deny list and the scrubbed environment."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Mapping

from mofaclaw.errors import ToolError

# --- The deny list -------------------------------------------------------------------------------
# A last line of defence against a model that types something catastrophic, not a security
# boundary: a determined command can always be written another way. The sandbox is the boundary.

# Characters that end a word even without a space (shlex's default set plus the backtick).
_PUNCTUATION = "();<>|&`"
_SEPARATORS = {"{", "}", "!", "$"}
# Words that run the next word as a command.
_PREFIXES = {
    "sudo",
    "doas",
    "env",
    "command",
    "builtin",
    "exec",
    "nice",
    "nohup",
    "time",
    "xargs",
    "timeout",
    "stdbuf",
    "ionice",
    "chroot",
    "busybox",
}
_SHELLS = {"sh", "bash", "dash", "zsh", "ksh", "fish"}
_POWER = {"shutdown", "reboot", "poweroff", "halt"}
_SYSTEMCTL_POWER = {"poweroff", "reboot", "halt", "kexec", "emergency", "rescue"}
_SYSTEM_DIRS = {
    "bin",
    "boot",
    "dev",
    "etc",
    "home",
    "lib",
    "lib32",
    "lib64",
    "opt",
    "proc",
    "root",
    "run",
    "sbin",
    "srv",
    "sys",
    "usr",
    "var",
}
_HOME_REFS = {"~", "$HOME", "${HOME}"}
# Command names the checks below look at; a wrapper like sudo is skipped up to the first of them.
_WATCHED = {"rm", "chmod", "chown", "chgrp", "kill", "pkill", "init", "telinit", "systemctl", "eval", *_POWER, *_SHELLS}

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bmkfs(\.\w+)?\b"), "formats a filesystem"),
    (re.compile(r"\b(wipefs|mkswap)\b"), "wipes a disk or partition"),
    (
        re.compile(r"\bdd\b[^;&|\n]*\bof=/dev/(?!null\b|zero\b|stdout\b|stderr\b|tty\b|fd/)"),
        "writes raw data to a device",
    ),
    (
        re.compile(r">\s*/dev/(sd[a-z]|hd[a-z]|vd[a-z]|xvd[a-z]|nvme\d|mmcblk\d|md\d|dm-\d|disk\d)"),
        "overwrites a disk device",
    ),
    (re.compile(r":\s*\(\s*\)\s*\{[^}]*:\s*\|\s*:"), "is a fork bomb"),
    (re.compile(r"\b(\w+)\s*\(\s*\)\s*\{[^}]*\b\1\s*\|\s*\1\b"), "is a fork bomb"),
)


def check_command(command: str) -> None:
    """Raise ToolError when `command` matches a destructive pattern."""
    for pattern, what in _PATTERNS:
        if pattern.search(command):
            _refuse(what)
    for words in _simple_commands(command):
        _check_words(words)


def _refuse(what: str) -> None:
    raise ToolError(
        f"command refused: it {what}. This is blocked by the exec safety deny list; "
        "if the task really needs it, ask the user to run it themselves"
    )


def _tokens(command: str) -> list[str]:
    # Line breaks end a command like ';' does, but shlex treats them as plain whitespace.
    text = command.replace("\\\n", " ").replace("\n", " ; ")
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCTUATION)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: bash will refuse it too; check the words we can see
        return text.split()


def _simple_commands(command: str) -> Iterator[list[str]]:
    """The word lists of the simple commands in `command`, wrappers like sudo or env removed."""
    words: list[str] = []
    for token in [*_tokens(command), ";"]:
        if token in _SEPARATORS or set(token) <= set(_PUNCTUATION):
            if words:
                yield from _unwrap(words)
            words = []
        else:
            words.append(token)


def _unwrap(words: list[str]) -> Iterator[list[str]]:
    if _is_assignment(words[0]) or _name(words[0]) in _PREFIXES:
        # "sudo -u root rm ...", "timeout 5 rm ...": the wrapped command is the first watched word.
        start = next((i for i, word in enumerate(words) if _name(word) in _WATCHED), None)
        if start is None:
            return
        words = words[start:]
    name = _name(words[0])
    if name in _SHELLS and "-c" in words[:-1]:
        yield from _simple_commands(words[words.index("-c") + 1])
    elif name == "eval":
        yield from _simple_commands(" ".join(words[1:]))
    else:
        yield [name, *words[1:]]


def _name(word: str) -> str:
    return os.path.basename(word.lstrip("\\"))


def _is_assignment(word: str) -> bool:
    return re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word) is not None


def _check_words(words: list[str]) -> None:
    name, args = words[0], words[1:]
    flags = [a for a in args if a.startswith("-") and a != "-"]
    targets = [a for a in args if not a.startswith("-")]
    recursive = "--recursive" in flags or any(not f.startswith("--") and ("r" in f or "R" in f) for f in flags)
    if name == "rm" and recursive and any(_is_broad(t) for t in targets):
        _refuse("recursively deletes the root, a home or a system directory")
    if name in {"chmod", "chown", "chgrp"} and recursive and any(_is_broad(t) for t in targets):
        _refuse("recursively changes permissions of the root, a home or a system directory")
    if name in _POWER or (name == "systemctl" and _SYSTEMCTL_POWER & set(args)):
        _refuse("shuts down or restarts the machine")
    if name in {"init", "telinit"} and args[-1:] in (["0"], ["6"]):
        _refuse("shuts down or restarts the machine")
    if name in {"kill", "pkill"} and args[-1:] == ["-1"]:
        _refuse("kills every process")


def _is_broad(target: str) -> bool:
    path = target
    while path.endswith(("/*", "/.", "/")) and path != "/":
        path = path.removesuffix("/*").removesuffix("/.").removesuffix("/")
    if path in {"", "/"} or path in _HOME_REFS or path == os.path.expanduser("~"):
        return True
    if path.startswith("~") and "/" not in path:  # ~user
        return True
    if path != "." and all(part in {".", ".."} for part in path.split("/")):  # "..", "../.."
        return True
    parts = [p for p in path.split("/") if p]
    # "/etc", "/usr/lib": a top-level directory or one level inside a system directory.
    return path.startswith("/") and (len(parts) <= 1 or (len(parts) == 2 and parts[0] in _SYSTEM_DIRS))


# --- The environment -----------------------------------------------------------------------------

# Names that hold a secret wherever the word appears (OPENAI_API_KEY, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY,
# SLACK_WEBHOOK_URL) and short words that only count as a whole part of the name (GH_PAT, BASIC_AUTH,
# GOOGLE_CREDS, but not PATH or AUTHOR).
_SECRET_WORDS = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|WEBHOOK|PRIVATE", re.IGNORECASE)
_SECRET_PARTS = re.compile(r"(?:^|_)(?:PAT|AUTH|CREDS?|COOKIE|DSN|DATABASE_URL)(?:_|$)", re.IGNORECASE)
# mofaclaw's own settings (MOFACLAW_PROVIDERS__OPENAI__API_KEY, MOFACLAW_GATEWAY__API_KEYS, ...).
_OWN_SETTINGS = "MOFACLAW_"
# Not secrets by name, but they hand out the user's SSH and GPG keys to whoever can reach the socket.
_AGENT_SOCKETS = {"SSH_AUTH_SOCK", "GPG_AGENT_INFO"}
# A URL with a password in it (postgres://user:pass@db/x, https://user:token@git.example), anywhere in a value.
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:[^\s/?#@]+@")
# Shorter secrets are only matched as a whole value: a 3-character "secret" must not knock out PATH.
_MIN_SUBSTRING_SECRET = 8


def is_secret_variable(name: str, value: str, secret_values: tuple[str, ...] = ()) -> bool:
    """Whether the variable `name=value` may hold a credential, so no command may see it."""
    if name.upper().startswith(_OWN_SETTINGS) or name in _AGENT_SOCKETS:
        return True
    if _SECRET_WORDS.search(name) or _SECRET_PARTS.search(name) or _URL_CREDENTIALS.search(value):
        return True
    return any(value == s or (len(s) >= _MIN_SUBSTRING_SECRET and s in value) for s in secret_values if s)


def scrub_environment(environ: Mapping[str, str], secret_values: tuple[str, ...]) -> dict[str, str]:
    """A copy of `environ` without credentials: by name, by URL-with-password value, and by known value."""
    return {name: value for name, value in environ.items() if not is_secret_variable(name, value, secret_values)}
