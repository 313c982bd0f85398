"""Helpers shared by several test files (imported as ``helpers.<module>``)."""
