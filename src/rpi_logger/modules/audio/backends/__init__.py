"""Audio backends: ``sounddevice`` (PortAudio input streams) and ``simulated`` (SPEC §7), both
delivering through `AudioSource`'s PortAudio-style callback."""
