"""avrobust: robustness of driving perception against physical adversarial attacks."""

from avrobust.runtime import defer_open3d_plotly, shorten_openmp_spin, tune_allocator

__version__ = "0.1.0"

tune_allocator()
shorten_openmp_spin()
defer_open3d_plotly()
