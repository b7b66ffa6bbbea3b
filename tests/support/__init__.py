"""Helpers shared by several test files: test files import from here (or take conftest fixtures),
never from each other."""
