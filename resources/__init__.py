"""Icons (SVG) and the console's style sheet, loaded by path relative to this package."""
