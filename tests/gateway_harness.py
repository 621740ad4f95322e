"""Runs the real `mofaclaw gateway` command in a subprocess, configured against the scripted upstream."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import openai

READY = re.compile(r"gateway ready on (http://\S+)/v1")


class GatewayProcess:
    def __init__(self, home: Path, upstream_url: str | None, config: str = "", env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        provider = ""
        if upstream_url:
            provider = (f'[agents.defaults]\nmodel = "scripted/test-model"\n\n[providers.scripted]\n'
                        f'api_base = "{upstream_url}"\napi_key = "sk-upstream-secret"\nmax_retries = 0\n'
                        "timeout = 10\n\n")
        (home / "config.toml").write_text(provider + config)
        self.env = {**os.environ, "MOFACLAW_HOME": str(home), **(env or {})}
        self.args = args
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.base = ""
        self._clients: list[openai.OpenAI] = []
        self._ready = threading.Event()

    def start(self, timeout: float = 20.0) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mofaclaw", "gateway", "--port", "0", *self.args],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(timeout) or not self.base:
            self.stop()
            raise RuntimeError("gateway did not start:\n" + "".join(self.lines))
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if match := READY.search(line):
                self.base = match.group(1)
                self._ready.set()
        self._ready.set()  # exited: unblock start()

    @property
    def url(self) -> str:
        return self.base + "/v1"

    def client(self, **options: Any) -> openai.OpenAI:
        """The official SDK pointed at this gateway; closed when the gateway stops, so no socket is
        left for the garbage collector to complain about in some later test."""
        client = openai.OpenAI(base_url=self.url, **options)
        self._clients.append(client)
        return client

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 10.0) -> int:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            self._reader.join(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
