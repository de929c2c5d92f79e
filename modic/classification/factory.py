"""Choose the endplate classifier named in the config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modic.classification.grading import EndplateClassifier
from modic.classification.methods import METHODS
from modic.classification.rules import RuleClassifier
from modic.errors import ConfigError


def load_classifier(config: Mapping[str, Any]) -> tuple[EndplateClassifier, dict[str, Any]]:
    """The classifier for ``config['method']`` and a description of it for reports."""
    method = config.get("method")
    if method == "rules":
        return RuleClassifier(config["rules"]), {"method": "rules", "thresholds": dict(config["voxels"])}
    if method == "learned":
        from modic.classification.learned import load_learned

        return load_learned(config)
    if method == "patch":
        from modic.classification.patch_model import load_patch_classifier

        return load_patch_classifier(config)
    raise ConfigError(f"classification.method is {method!r}; accepted: {', '.join(METHODS)}")


def with_method(config: Mapping[str, Any], method: str | None) -> dict[str, Any]:
    """``config`` (an analysis config) with its grading method replaced by ``method``; unchanged when None.

    What ``--method`` and the API's ``method=`` do: ``rules``, ``learned`` or ``patch``
    in place of ``classification.method``, every other setting kept.

    Raises:
        ConfigError: ``method`` is not one of :data:`METHODS`.
    """
    if method is None:
        return dict(config)
    if method not in METHODS:
        raise ConfigError(f"grading method '{method}' is not one of {', '.join(METHODS)}")
    return {**config, "classification": {**config["classification"], "method": method}}
