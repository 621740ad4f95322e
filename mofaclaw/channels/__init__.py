"""Chat channels: the Channel protocol, the manager that runs them, one module per channel."""
