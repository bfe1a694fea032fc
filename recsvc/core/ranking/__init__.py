"""Ranking: blending algorithms' scores (compiled kernel), top-n selection, reasons and
their anchors, and the packed list format the cache stores."""
