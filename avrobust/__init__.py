"""avrobust: robustness of driving perception against physical adversarial attacks."""

from avrobust.runtime import defer_open3d_plotly, tune_allocator

__version__ = "0.1.0"

tune_allocator()
defer_open3d_plotly()
