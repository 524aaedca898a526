"""Victim perception models: architectures, training, shipped weights, user-model adapters."""
