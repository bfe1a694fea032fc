"""The shop's policy over rankings: how events are weighted, business rules and A/B
variants, and the filter stage applied when a list is read."""
