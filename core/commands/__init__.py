"""The engine's service API, one module per kind of object: what REST routes, the CLI and the console call."""
