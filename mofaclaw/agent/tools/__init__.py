"""The agent's tools: the protocol, the registry, and one module per tool family."""
