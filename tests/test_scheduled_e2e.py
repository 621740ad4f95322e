"""Scheduled work inside the real gateway: a job added with the CLI while it runs is run by the agent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gateway_harness import GatewayProcess
from test_cli_config import mofaclaw
from upstream import ScriptedUpstream

StartGateway = Callable[..., GatewayProcess]


def test_cli_job_reaches_the_running_gateway(start_gateway: StartGateway, upstream: ScriptedUpstream,
                                             mofaclaw_home: Path) -> None:
    gw = start_gateway("[heartbeat]\nenabled = false\n")
    added = mofaclaw("cron", "add", "--name", "tea", "--message", "Remind me to drink tea", "--every", "2",
                     env={"MOFACLAW_HOME": str(mofaclaw_home)})
    assert added.returncode == 0, added.stderr
    upstream.wait_until_sync(lambda: upstream.request_count >= 1, timeout=15, what="the cron turn")
    assert upstream.requests[0]["messages"][-1]["content"] == "Remind me to drink tea"
    assert "Channel: cron" in upstream.requests[0]["messages"][0]["content"]  # a turn of its own
    assert "Traceback" not in gw.output
