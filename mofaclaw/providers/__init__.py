"""LLM providers: the protocol, its value types, and the implementations behind it."""
