"""Physical attacks: camera patches and sign perturbations (``camera``), LiDAR attacks."""
