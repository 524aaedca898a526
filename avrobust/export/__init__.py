"""Print-ready files of patches at true physical size."""
