"""Studies that judge one attack or defence on held-out views (not campaigns): viewpoint sweeps,
the sticker, hiding-patch, digital, LiDAR and adversarial-object attacks re-rendered and judged
per view and victim, a saved patch file on a held-out sweep, a LiDAR check's ROC."""
