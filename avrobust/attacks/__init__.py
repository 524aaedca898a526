"""Attacks as the victim meets them: camera patches and sign stickers composited with Kornia
under expectation over transformation (printability, smoothness, learnt masks), digital
baselines (FGSM, PGD), and LiDAR spoofing, removal and the adversarial object (``lidar/``).
Attacks take frames and tensors; they never import a backend."""
