"""Audio backends: ``sounddevice`` (PortAudio input streams) and ``simulated`` (design.md §7), both
delivering through `AudioSource`'s PortAudio-style callback."""
