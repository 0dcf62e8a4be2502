"""Stands in for a method shipped by another installed package (loaded through an entry point)."""

from bench.methods.base import Method


class OutsideMethod(Method):
    """L = 0 (placeholder objective of an out-of-tree package in the registry test)."""
