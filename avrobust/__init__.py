"""avrobust: robustness of driving perception against physical adversarial attacks."""

from avrobust.core.runtime import tune_allocator

__version__ = "0.1.0"

tune_allocator()
