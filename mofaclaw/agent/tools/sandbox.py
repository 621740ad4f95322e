"""The bubblewrap sandbox for exec: its command line, whether it works here, and how that is reported."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mofaclaw.agent.tools.settings import SandboxMode, ToolSettings
from mofaclaw.errors import ToolError

# System directories the sandbox sees read-only. /usr/local is under /usr; /opt and /nix hold
# toolchains on some machines. The rest of the filesystem (home, MOFACLAW_HOME, /mnt, /srv, ...)
# simply does not exist inside.
_READONLY_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix")
# Inside the read-only /etc: password hashes, sudo rules and private keys are masked.
_MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
_MASKED_DIRS = ("/etc/sudoers.d", "/etc/ssl/private", "/etc/ssh")
_PROBE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    reason: str = ""


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def bwrap_argv(bwrap: str, workspace: Path, cwd: Path, command: str, environ: Mapping[str, str]) -> list[str]:
    """The command line that runs `bash -c command` in the sandbox, with `cwd` inside `workspace`."""
    argv = [
        bwrap,
        # New user, pid, ipc, uts and cgroup namespaces; the network stays shared because agents
        # fetch packages and pages. The pid namespace means that nothing the command starts can
        # outlive it: when the command ends, the kernel kills the rest of the namespace.
        "--unshare-all",
        "--share-net",
        "--die-with-parent",
    ]
    for path in _READONLY_DIRS:
        if os.path.islink(path):  # merged-/usr systems: /bin -> usr/bin
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    argv += _etc_masks()
    resolv = os.path.realpath("/etc/resolv.conf")
    if not resolv.startswith("/etc/") and os.path.exists(resolv):
        # systemd-resolved links it into /run, which is otherwise not mounted.
        argv += ["--ro-bind", resolv, resolv]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    home = environ.get("HOME", "")
    if home and home != "/" and os.path.isdir(home):
        # An empty, throw-away home: programs that write ~/.cache work, and nothing real is seen.
        argv += ["--tmpfs", home]
    ws = os.path.realpath(workspace)
    # Bound last, so it stays visible (and writable) even when it lives under home or /tmp.
    argv += ["--bind", ws, ws, "--chdir", str(cwd), "--setenv", "TMPDIR", "/tmp"]
    return [*argv, "--", "bash", "-c", command]


def _etc_masks() -> list[str]:
    argv: list[str] = []
    for path in _MASKED_FILES:
        if os.path.isfile(path):
            argv += ["--ro-bind", "/dev/null", path]
    for path in _MASKED_DIRS:
        if os.path.isdir(path):
            argv += ["--tmpfs", path]
    return argv


@functools.cache
def probe_bwrap(bwrap: str) -> Probe:
    """Whether bubblewrap can create its namespaces here (not in every container); run once."""
    with tempfile.TemporaryDirectory(prefix="mofaclaw-probe-") as tmp:
        workspace = Path(tmp)
        argv = bwrap_argv(bwrap, workspace, workspace, "true", os.environ)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Probe(False, f"bubblewrap failed to start: {exc}")
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Probe(False, f"bubblewrap cannot create a sandbox here: {detail}")
    return Probe(True)


def sandbox_status(settings: ToolSettings) -> str:
    """One line for `mofaclaw status`: is exec sandboxed, and if not, why. Blocking the first time."""
    mode = settings.exec_sandbox
    if not settings.exec_enabled:
        return "off (tools.exec.enabled = false)"
    if mode == "none":
        return "off (tools.exec.sandbox = none)"
    bwrap = find_bwrap()
    if bwrap is None:
        if mode == "bwrap":
            return "unavailable (tools.exec.sandbox = bwrap but bubblewrap is not installed; exec refuses)"
        return "off (bubblewrap not installed)"
    probe = probe_bwrap(bwrap)
    if probe.ok:
        return "bwrap (active)"
    if mode == "bwrap":
        return f"unavailable ({probe.reason}; exec refuses to run)"
    return f"off ({probe.reason})"


def choose_sandbox(mode: SandboxMode) -> str | None:
    """The bwrap executable to run commands in, or None to run them directly.

    Blocking (the probe runs a process the first time): call it in a thread.
    """
    if mode == "none":
        return None
    bwrap = find_bwrap()
    probe = probe_bwrap(bwrap) if bwrap else Probe(False, "bubblewrap is not installed")
    if probe.ok:
        return bwrap
    if mode == "bwrap":
        raise ToolError(
            f"tools.exec.sandbox is 'bwrap' but {probe.reason}; the command was not run, "
            "because running it unsandboxed is not allowed by the configuration"
        )
    return None
