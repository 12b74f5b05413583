"""Generators of the documentation's reference pages: every table comes from the code."""
