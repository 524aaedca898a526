"""Scenarios: the validated scenario format, YAML loading with line numbers, the library,
campaign files with their sweeps into Jobs, and OpenSCENARIO import."""
