"""Deterministic synthetic lumbar MRI studies for tests, the demo and training supplements."""
