"""Placeholder: McCormick relaxation of x*y is being written."""
