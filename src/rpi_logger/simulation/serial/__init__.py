"""Serial devices simulated behind pseudo-terminals (SPEC §7)."""
