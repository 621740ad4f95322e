"""The agent: the loop that consumes the bus, the turn runner, context, memory, skills, subagents."""
