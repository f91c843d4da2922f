"""modules/notes."""
