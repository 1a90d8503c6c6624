"""Async Mirror core: the replication engine and its domain, usable without Qt."""
