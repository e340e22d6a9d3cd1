"""Runs a study: CLI, Ray Tune wiring, the OOM-aware searcher, MLflow, reports, estimates."""
