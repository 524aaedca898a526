"""Training of the victim models on simulator data: the sign classifier (clean or PGD-trained),
the camera detector (clean or patch-trained), the LiDAR detector (clean or trained on spoofed
and removed returns), the fusion detectors; checkpoints to resume from."""
