"""The array daemon: one storage array as a long-running service (``mirrorctl array serve``)."""
