"""Infer package."""
