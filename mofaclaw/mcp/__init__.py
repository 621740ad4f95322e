"""MCP: tools from Model Context Protocol servers for the agent, and the agent served as an MCP server."""
