"""The grading methods modic offers, by name (``classification.method``, ``--method``, ``method=``).

A module of its own, importing only the settings vocabulary, so that the
command line can offer the names without loading the classifiers.
"""

from __future__ import annotations

from modic.settings.enums import ClassifierMethod

METHODS = tuple(method.value for method in ClassifierMethod)
"""``rules``: signal thresholds; ``learned``: a gradient-boosting model of the features; ``patch``: a patch CNN."""
