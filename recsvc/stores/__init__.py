"""Where the service keeps things: the cache (Redis or in-process, opened from a URL),
the events log, catalog overrides, and the paths of the state directory."""
