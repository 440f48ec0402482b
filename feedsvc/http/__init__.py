"""Between a request and its bytes: 304 or 200, the caches, the fast path, headers, errors."""
