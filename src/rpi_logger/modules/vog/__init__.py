"""VOG: occlusion goggles (ISO 16673), sVOG, lens changes and trial totals on the host clock."""
