"""The CARLA backend (``backend: carla``): the same scenarios, attacks and metrics on a CARLA
0.9.16 server. ``backend.CarlaBackend`` drives a server; the other modules are plain conversions
that work without one (see docs/carla.md)."""
