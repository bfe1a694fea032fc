"""Commands that work on models and stores outside the request path: filling the cache
(`warm-cache`), listing versions and rolling back."""
