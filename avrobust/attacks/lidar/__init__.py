"""LiDAR attacks: spoofing (a phantom appears), removal (a real object disappears), each within
a stated physical threat model (:mod:`.threat`)."""
