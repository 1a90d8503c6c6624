"""Roles between two arrays: role changes (planned and forced), reconciliation when they talk again."""
