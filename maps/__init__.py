"""Outputs: the interactive map, the per-street report and the planning-department package."""
