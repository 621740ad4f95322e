"""The OpenAI-compatible HTTP API: the "api" channel of the agent."""
