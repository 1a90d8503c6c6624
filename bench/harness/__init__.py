"""What the benches in bench/ share: a lab of array daemons per run, and one way to report figures."""
