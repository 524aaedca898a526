"""Datasets from backends; KITTI export and import; point-cloud files."""
