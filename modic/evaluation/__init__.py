"""Evaluation commands that run the pipeline on labelled datasets and report metrics."""
