"""Inputs: read, validate and convert every input layer into one metric CRS."""
