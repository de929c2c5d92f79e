"""The analysis settings (``configs/analysis.yaml``) and their validation.

Every value is checked once at load time, so a wrong type or an impossible
value is a one-line ConfigError naming the file and the field, never a crash
in the middle of an analysis. The loaded settings also carry the input checks
(``input_checks``, from ``configs/input_checks.yaml``) that the analysis
stages apply, so that no stage reads a settings file itself.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modic.config import load_shipped, load_yaml
from modic.errors import ConfigError

SECTIONS = ("segmentation", "levels", "endplates", "classification", "single_slice", "runtime")
LEVEL = re.compile(r"^(C[2-7]|T([1-9]|1[0-2])|L[1-6]|S1)-(C[3-7]|T([1-9]|1[0-2])|L[1-6]|S1)$")

Check = Callable[[Any], str | None]


def _number(low: float | None = None, high: float | None = None, *, integer: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            return f"a{'n integer' if integer else ' number'}"
        if (low is not None and value < low) or (high is not None and value > high):
            return f"a number between {low} and {high}" if high is not None else f"a number of at least {low}"
        return None

    return check


def _optional(check: Check) -> Check:
    def optional(value: Any) -> str | None:
        problem = None if value is None else check(value)
        return f"{problem} or null" if problem else None

    return optional


def _choice(*options: str) -> Check:
    return lambda value: None if value in options else f"one of {', '.join(options)}"


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty text"


def _levels(value: Any) -> str | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and LEVEL.match(v) for v in value):
        return "a non-empty list of levels such as [L3-L4, L4-L5, L5-S1]"
    return None


def _significance(value: Any) -> str | None:
    return None if isinstance(value, list) and sorted(value) == [0, 1, 2, 3] else "the types 0, 1, 2, 3 in some order"


def _fraction_pair(value: Any) -> str | None:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in value
    )
    return None if ok and value[0] < value[1] else "two fractions [low, high] with 0 <= low < high <= 1"


def _depth_pair(value: Any) -> str | None:
    ok = isinstance(value, list) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value
    )
    return None if ok and value[0] < value[1] else "two depths [near, far] in mm with 0 <= near < far"


RULES: dict[str, Check] = {
    "segmentation.bundle": _string,
    "segmentation.thin_slice_bundle": _optional(_string),
    "segmentation.thin_slice_max_spacing_mm": _number(0.1, 10),
    "segmentation.batch_size": _number(1, integer=True),
    "segmentation.min_field_of_view_mm": _number(1),
    "segmentation.cpu_precision": _choice("float32", "bfloat16", "auto"),
    "levels.graded": _levels,
    "levels.min_vertebra_area_mm2": _number(0),
    "levels.min_vertebra_volume_mm3": _number(0),
    "levels.min_s1_area_mm2": _number(0),
    "levels.min_s1_volume_mm3": _number(0),
    "levels.min_disc_area_mm2": _number(0),
    "levels.min_disc_volume_mm3": _number(0),
    "levels.max_vertebra_area_mm2": _number(1),
    "levels.max_vertebra_volume_mm3": _number(1),
    "levels.min_relative_size": _number(0, 1),
    "levels.lateral_trim_fraction": _number(0, 1),
    "levels.disc_separation_mm": _number(0, 10),
    "levels.merge_factor": _number(1.1),
    "levels.split_min_fraction": _number(0, 1),
    "levels.s1_fraction": _number(0, 1),
    "levels.min_s1_relative_size": _number(0, 10),
    "levels.gap_factor": _number(1),
    "levels.transitional_disc_ratio": _number(0, 1),
    "levels.transitional_disc_min_size": _number(0, 10),
    "levels.transitional_disc_distance": _number(0, 10),
    "endplates.depth.mode": _choice("fraction", "mm"),
    "endplates.depth.value": _number(0),
    "endplates.exclude_mm": _number(0, 10),
    "endplates.rim_mm": _number(0, 10),
    "endplates.max_lateral_fraction": _number(0.1, 5),
    "endplates.reference_height": _fraction_pair,
    "endplates.reference_ap": _number(0, 1),
    "endplates.min_band_voxels": _number(0, integer=True),
    "endplates.min_reference_voxels": _number(0, integer=True),
    "classification.method": _choice("rules", "learned", "patch"),
    "classification.learned_bundle": _string,
    "classification.patch_bundle": _string,
    "classification.patches.rows": _number(8, 256, integer=True),
    "classification.patches.cols": _number(8, 256, integer=True),
    "classification.patches.spacing_mm": _number(0.1, 5),
    "classification.patches.disc_side_mm": _number(0, 50),
    "classification.patches.max_relative": _number(1),
    "classification.level_significance": _significance,
    "classification.voxels.median_filter": _number(1, 15, integer=True),
    "classification.voxels.t1_low": _number(0),
    "classification.voxels.t1_high": _number(0),
    "classification.voxels.t2_low": _number(0),
    "classification.voxels.t2_high": _number(0),
    "classification.voxels.t2_iso_min": _number(0),
    "classification.voxels.type1_t1_low": _number(0),
    "classification.voxels.reference_half_difference": _optional(_number(0)),
    "classification.rules.min_fraction": _number(0, 1),
    "classification.rules.type1_min_fraction": _number(0, 1),
    "classification.rules.mixed_fraction": _number(0, 1),
    "classification.rules.confidence_scale": _number(1e-6),
    "classification.rules.single_sequence_confidence": _number(0, 1),
    "classification.low_confidence": _number(0, 1),
    "single_slice.max_shift_mm": _number(0),
    "single_slice.min_alignment_correlation": _number(-1, 1),
    "runtime.keep_freed_memory_mb": _number(0, 2047, integer=True),
}

INPUT_CHECKS = "input_checks"
"""The key of the input-check settings (``configs/input_checks.yaml``) in the loaded analysis settings."""

INPUT_CHECK_RULES: dict[str, Check] = {
    "contrast.canal_depth_mm": _depth_pair,
    "contrast.mirrored_front": _number(0),
    "contrast.mirrored_margin": _number(0),
    "contrast.mirrored_min_product": _number(0),
    "contrast.swapped_ratio": _number(1),
    "contrast.min_voxels": _number(1, integer=True),
    "orientation.bundle": _optional(_string),
    "orientation.upside_down_threshold": _number(0.5, 1),
    "orientation.min_lordosis_mm": _number(),
}


def load_analysis_config(path: str | Path | None = None) -> dict[str, Any]:
    """The analysis settings: the shipped ``configs/analysis.yaml``, or a user file with the same fields.

    ``input_checks`` holds the shipped ``configs/input_checks.yaml`` unless the
    file carries that section itself (as a file written from loaded settings does).
    """
    where = str(path) if path is not None else "configs/analysis.yaml"
    config = load_yaml(path) if path is not None else load_shipped("analysis.yaml")
    config.setdefault(INPUT_CHECKS, load_shipped("input_checks.yaml"))
    validate(config, where=where)
    return config


def validate(config: Mapping[str, Any], *, where: str) -> None:
    """Raise ConfigError for the first unknown, missing or invalid field."""
    _refuse_unknown(config, where=where)
    missing = [s for s in SECTIONS if not isinstance(config.get(s), Mapping)]
    if missing:
        raise ConfigError(f"analysis config {where} lacks section(s) {missing}; start from configs/analysis.yaml")
    for dotted, check in RULES.items():
        value: Any = config
        for key in dotted.split("."):
            if not isinstance(value, Mapping) or key not in value:
                raise ConfigError(f"analysis config {where}: missing '{dotted}'; see configs/analysis.yaml")
            value = value[key]
        problem = check(value)
        if problem:
            raise ConfigError(f"analysis config {where}: '{dotted}' is {value!r}; expected {problem}")
    if INPUT_CHECKS in config:
        _validate_input_checks(config[INPUT_CHECKS], where=where)


def _validate_input_checks(checks: Any, *, where: str) -> None:
    """ConfigError for a missing or invalid input-check setting (``configs/input_checks.yaml``)."""
    for dotted, check in INPUT_CHECK_RULES.items():
        value: Any = checks
        for key in dotted.split("."):
            if not isinstance(value, Mapping) or key not in value:
                raise ConfigError(f"analysis config {where}: missing '{INPUT_CHECKS}.{dotted}'; "
                                  "see configs/input_checks.yaml")
            value = value[key]
        problem = check(value)
        if problem:
            raise ConfigError(f"analysis config {where}: '{INPUT_CHECKS}.{dotted}' is {value!r}; expected {problem}")


def _refuse_unknown(config: Mapping[str, Any], *, where: str, prefix: str = "") -> None:
    """ConfigError for a key that no rule knows (a misspelling would otherwise be silently ignored)."""
    known = {rule.split(".")[prefix.count(".")] for rule in RULES if rule.startswith(prefix)}
    if not prefix:
        known.add(INPUT_CHECKS)
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known there: {', '.join(sorted(known))}"
            raise ConfigError(f"analysis config {where}: unknown key '{dotted}'; {hint} (see configs/analysis.yaml)")
        if dotted not in RULES and dotted != INPUT_CHECKS and isinstance(value, Mapping):
            _refuse_unknown(value, where=where, prefix=f"{dotted}.")
