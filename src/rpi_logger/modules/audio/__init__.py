"""modules/audio."""
