"""Defences: wrappers around perception models that pass, flag or drop detections (physical and
cross-modal consistency checks) or transform their input. Each is a campaign ``defence``
component (``campaign/components.py``)."""
