"""Converters from public or vendor log formats into recsvc's input format."""
