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

from mofaclaw.agent.tools.settings import NetworkMode, ToolSettings
from mofaclaw.agent.tools.shell_policy import scrub_environment

# System directories the sandbox sees read-only. /usr/local is under /usr; /opt and /nix hold
# toolchains on some machines. The rest of the filesystem (home, MOFACLAW_HOME, /mnt, /srv, ...)
# simply does not exist inside.
_READONLY_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix")
# Inside the read-only /etc: password hashes, sudo rules and private keys are masked.
_MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
_MASKED_DIRS = ("/etc/sudoers.d", "/etc/ssl/private", "/etc/ssh")
# The user the command runs as inside the sandbox when mofaclaw runs as root ("nobody").
_UNPRIVILEGED_ID = "65534"
_PROBE_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Probe:
    ok: bool
    reason: str = ""


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def bwrap_argv(bwrap: str, workspace: Path, cwd: Path, command: str, environ: Mapping[str, str],
               network: NetworkMode = "host") -> list[str]:
    """The command line that runs `bash -c command` in the sandbox, with `cwd` inside `workspace`."""
    argv = [
        bwrap,
        # New user, pid, ipc, uts, cgroup and (unless shared) network namespaces. The pid
        # namespace means that nothing the command starts can outlive it: when the command ends,
        # or bwrap dies with mofaclaw, the kernel kills the rest of the namespace.
        "--unshare-all",
        "--unshare-user",
        "--die-with-parent",
        "--new-session",  # no controlling terminal to push keystrokes into (TIOCSTI)
        # bwrap started by root would keep every capability inside: drop them all, so the command
        # cannot mount, unmount or remount anything, nor override file permissions.
        "--cap-drop",
        "ALL",
    ]
    if network == "host":
        argv.append("--share-net")
    if os.geteuid() == 0:
        # Seen from inside as "nobody", so programs do not act as root. Its files on the host still
        # belong to root (the namespace maps it there), which is why /proc below is read-only too.
        argv += ["--uid", _UNPRIVILEGED_ID, "--gid", _UNPRIVILEGED_ID]
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
    # /proc is read-only as a whole: for a command that is root on the host (even without
    # capabilities) /proc/sys, /proc/sysrq-trigger and friends would otherwise be writable files.
    argv += ["--proc", "/proc", "--remount-ro", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
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
def probe_bwrap(bwrap: str, network: NetworkMode = "host") -> Probe:
    """Whether bubblewrap can create its namespaces here (not in every container); run once."""
    with tempfile.TemporaryDirectory(prefix="mofaclaw-probe-") as tmp:
        workspace = Path(tmp)
        env = scrub_environment(os.environ, ())
        argv = bwrap_argv(bwrap, workspace, workspace, "true", env, network)
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=_PROBE_TIMEOUT,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Probe(False, f"bubblewrap failed to start: {exc}")
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Probe(False, f"bubblewrap cannot create a sandbox here: {detail}")
    return Probe(True)


@dataclass(frozen=True, slots=True)
class Decision:
    """How exec runs commands under the current settings on this machine."""

    bwrap: str | None  # the sandbox to run in; None: directly, or not at all
    refusal: str = ""  # why exec refuses to run any command
    reason: str = ""  # why there is no sandbox
    refused_by: str = ""  # the setting that makes it refuse


def decide(settings: ToolSettings) -> Decision:
    """Sandboxed, unsandboxed, or refused. Blocking (the probe runs a process once): use a thread."""
    mode, network = settings.exec_sandbox, settings.exec_network
    if mode == "none":
        reason = "tools.exec.sandbox = none"
    else:
        bwrap = find_bwrap()
        probe = probe_bwrap(bwrap, network) if bwrap else Probe(False, "bubblewrap is not installed")
        if probe.ok:
            return Decision(bwrap)
        reason = "bubblewrap not installed" if bwrap is None else probe.reason
        if mode in ("required", "bwrap"):
            return Decision(None, f"tools.exec.sandbox is '{mode}' but {probe.reason}; the command was not run, "
                                  "because running it unsandboxed is not allowed by the configuration", reason,
                            "tools.exec.sandbox")
    if network == "none":
        return Decision(None, f"tools.exec.network is 'none' but there is no sandbox ({reason}) to cut a "
                              "command off from the network; the command was not run", reason, "tools.exec.network")
    return Decision(None, reason=reason)


def sandbox_status(settings: ToolSettings) -> str:
    """One line for `mofaclaw status`: is exec sandboxed, and if not, why. Blocking the first time."""
    if not settings.exec_enabled:
        return "off (tools.exec.enabled = false)"
    decision = decide(settings)
    if decision.bwrap:
        return "bwrap (active)"
    if decision.refused_by == "tools.exec.network":
        return f"off ({decision.reason}); exec refuses to run, tools.exec.network = none needs the sandbox"
    if decision.refusal:
        return f"unavailable ({decision.reason}; exec refuses to run)"
    return f"off ({decision.reason})"


def network_status(settings: ToolSettings) -> str:
    """One line for `mofaclaw status`: what network a command can reach."""
    if not settings.exec_enabled:
        return "exec tool disabled"
    if settings.exec_network == "host":
        return "host (commands reach whatever this machine reaches, loopback services included)"
    if decide(settings).bwrap:
        return "none (the sandbox has no network)"
    return "none, but there is no sandbox to enforce it: exec refuses to run"


def sandbox_warning(settings: ToolSettings) -> str | None:
    """What to warn about at startup when exec runs commands unsandboxed or refuses them; else None."""
    if not settings.exec_enabled:
        return None
    decision = decide(settings)
    if decision.bwrap:
        return None
    if decision.refusal:
        return f"the exec tool will refuse every command: {decision.refusal.split(';')[0]}"
    reach = "everything on this machine, as root" if os.geteuid() == 0 else "everything this user can"
    return (f"the exec tool runs commands WITHOUT a sandbox ({decision.reason}): they can read and change "
            f"{reach}. Install bubblewrap, or set tools.exec.sandbox = \"required\" to refuse instead")
