"""Wizards: each page only shows what core decides (validation and eligibility live in core)."""
