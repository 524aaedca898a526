"""Runtime monitors: scores that say how much a model's input should be doubted (classifier
OOD scores, the consistency checks scored on the same footing), thresholds calibrated on clean
data with a stated guarantee, and the selective-classification measures they are ranked by."""
