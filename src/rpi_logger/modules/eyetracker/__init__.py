"""The EyeTracker module: a Pupil Labs Neon (or its simulation) on the host clock."""
