"""The message bus between channels and the agent."""
