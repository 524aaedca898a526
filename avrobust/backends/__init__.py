"""Simulation backends: the embedded simulator (default) and CARLA."""
