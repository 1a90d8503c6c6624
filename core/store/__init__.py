"""Per-array configuration database (SQLite in WAL mode, through SQLAlchemy)."""
