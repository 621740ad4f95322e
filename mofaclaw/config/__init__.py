"""Configuration: the pydantic models, where the file lives, and how it is loaded."""
