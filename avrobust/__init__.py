"""avrobust: robustness of driving perception against physical adversarial attacks.

Importing it changes nothing in the process; :func:`avrobust.runtime.apply` makes the process
settings the command line uses (allocator, OpenMP spin, Open3D start-up)."""

__version__ = "0.1.0"
