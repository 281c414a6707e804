"""HTTP handlers, one module per resource. Each is short: decode, call the data functions, encode."""
