"""Serial ports: discovery by USB VID:PID (pyserial's port list) or a configured path."""
