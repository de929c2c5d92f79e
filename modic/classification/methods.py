"""The grading methods modic offers, by name (``classification.method``, ``--method``, ``method=``).

A module of its own, importing nothing, so that the command line can offer
the names without loading the classifiers.
"""

from __future__ import annotations

METHODS = ("rules", "learned", "patch")
"""``rules``: signal thresholds; ``learned``: a gradient-boosting model of the features; ``patch``: a patch CNN."""
