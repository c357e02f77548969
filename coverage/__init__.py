"""Analysis: walk graph, snapping, multi-source reach, isochrones, indicators and standards."""
