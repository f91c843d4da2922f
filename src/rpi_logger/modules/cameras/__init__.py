"""modules/cameras."""
