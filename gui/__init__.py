"""The console (PySide6). Only :mod:`gui.bridge` talks to the engine; the rest shows snapshots."""
