"""Victim perception models: architectures, metrics, shipped weights, user-model adapters
(training is in :mod:`avrobust.training`)."""
