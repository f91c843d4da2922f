"""The fault campaign's marker (`faults`, registered in pyproject.toml): deselect it with
`-m "not faults"` for a quick run."""
