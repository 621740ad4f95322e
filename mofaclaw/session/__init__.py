"""Conversation storage: the SessionStore protocol and its SQLite implementation."""
