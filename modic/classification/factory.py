"""Choose the endplate classifier named in the settings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modic.classification.grading import EndplateClassifier
from modic.classification.methods import METHODS
from modic.classification.rules import RuleClassifier
from modic.errors import ConfigError
from modic.settings import AnalysisSettings, ClassificationSettings, ClassifierMethod, to_dict


def load_classifier(config: ClassificationSettings) -> tuple[EndplateClassifier, dict[str, Any]]:
    """The classifier for ``config.method`` and a description of it for reports."""
    method = config.method
    if method == ClassifierMethod.RULES:
        return RuleClassifier(config.rules), {"method": "rules", "thresholds": to_dict(config.voxels)}
    if method == ClassifierMethod.LEARNED:
        from modic.classification.learned import load_learned

        return load_learned(config)
    if method == ClassifierMethod.PATCH:
        from modic.classification.patch_model import load_patch_classifier

        return load_patch_classifier(config)
    raise ConfigError(f"classification.method is {method!r}; accepted: {', '.join(METHODS)}")


def with_method(config: AnalysisSettings, method: str | None) -> AnalysisSettings:
    """``config`` with its grading method replaced by ``method``; unchanged when None.

    What ``--method`` and the API's ``method=`` do: ``rules``, ``learned`` or ``patch``
    in place of ``classification.method``, every other setting kept.

    Raises:
        ConfigError: ``method`` is not one of :data:`METHODS`.
    """
    if method is None:
        return config
    if method not in METHODS:
        raise ConfigError(f"grading method '{method}' is not one of {', '.join(METHODS)}")
    return replace(config, classification=replace(config.classification, method=ClassifierMethod(method)))
