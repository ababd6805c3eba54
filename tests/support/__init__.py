"""Helpers for the tests (and the app benchmark) that the installed package does not ship."""
