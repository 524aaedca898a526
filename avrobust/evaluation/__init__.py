"""Evaluation: jobs, the runner, executors, the results store, metrics."""
