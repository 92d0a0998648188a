"""Edge visual quality inspection."""

__version__ = "0.1.0"
