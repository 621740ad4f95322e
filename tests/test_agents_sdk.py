"""The OpenAI Agents SDK drives an agent with its own Python function tool through the real gateway."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest
from gateway_harness import GatewayProcess
from upstream import ScriptedUpstream

agents = pytest.importorskip("agents")

StartGateway = Callable[..., GatewayProcess]


@pytest.mark.parametrize("model_class", ["OpenAIChatCompletionsModel", "OpenAIResponsesModel"])
async def test_an_agents_sdk_agent_calls_its_function_tool_through_the_gateway(
        start_gateway: StartGateway, upstream: ScriptedUpstream, model_class: str) -> None:
    agents.set_tracing_disabled(True)
    gw = start_gateway()
    client = openai.AsyncOpenAI(base_url=gw.url, api_key="unused")
    asked: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return f"sunny and 24C in {city}"

    upstream.tool_calls([("list_dir", {"path": "."}), ("get_weather", {"city": "Paris"})])
    upstream.reply("It is sunny in Paris.")
    model = getattr(agents, model_class)(model="mofaclaw", openai_client=client)
    agent = agents.Agent(name="Assistant", instructions="Answer briefly.", model=model, tools=[get_weather])
    result = await agents.Runner.run(agent, "What is the weather in Paris?")

    assert result.final_output == "It is sunny in Paris."
    assert asked == ["Paris"]  # the SDK ran its own tool with the model's arguments
    assert upstream.request_count == 2
    resumed = upstream.requests[1]["messages"]
    step = next(m for m in resumed if m.get("tool_calls"))
    assert [c["function"]["name"] for c in step["tool_calls"]] == ["list_dir", "get_weather"]
    results = [(m.get("name"), m["content"]) for m in resumed if m["role"] == "tool"]
    assert [name for name, _ in results] == ["list_dir", "get_weather"]  # the agent's own call kept on resume
    assert results[-1][1] == "sunny and 24C in Paris"
    assert "get_weather" in [t["function"]["name"] for t in upstream.requests[0]["tools"]]
    await client.close()
