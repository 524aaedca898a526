"""Scenarios: what to simulate, and previews of it."""
