"""Choose the endplate classifier named in the settings."""

from __future__ import annotations

from typing import Any

from modic.classification.grading import EndplateClassifier
from modic.classification.rules import RuleClassifier
from modic.errors import ConfigError
from modic.settings import ClassificationSettings, ClassifierMethod, to_dict

METHODS = tuple(method.value for method in ClassifierMethod)


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
