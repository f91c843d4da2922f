"""Serial devices simulated behind pseudo-terminals (design.md §7)."""
