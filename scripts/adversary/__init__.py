"""The adversarial harness behind scripts/adversarial.py: a lab driver, the write-log oracle, the sub-runs."""
