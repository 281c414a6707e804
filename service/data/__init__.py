"""Data functions, one module per resource: SQL from sql/, caching and invalidation beside it."""
