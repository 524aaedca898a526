"""LiDAR attacks, each within a stated physical threat model (:mod:`.threat`): spoofing (a
phantom appears, :mod:`.spoof`), removal (a real object disappears, :mod:`.remove`), the
adaptive spoofer that knows the free-space check (:mod:`.adaptive`), the adversarial object's
shape against the LiDAR and texture against the camera (:mod:`.adv_object`,
:mod:`.object_texture`), and the campaign attacks built on them (:mod:`.in_campaign`,
:mod:`.object_in_campaign`)."""
