"""The thresholds that decide what counts as a detection and what a detection reports, named
once: campaigns, attack studies, defences and the evidence pictures all use these."""

#: A detection counts when its score is at least this (every shipped detector's operating point).
DETECTION_SCORE = 0.3
#: A detection reports a target when its box overlaps the target's box this much: 2D IoU for
#: camera boxes, IoU of the footprints on the ground (BEV) for 3D boxes (PASCAL VOC, KITTI).
MATCH_IOU = 0.5
#: Metres: a 3D detection whose centre is this near a spoofed phantom's centre reports it.
PHANTOM_RADIUS_M = 2.0
