"""``mirrorctl``: the command-line front end of the engine (one thin file per command group)."""
