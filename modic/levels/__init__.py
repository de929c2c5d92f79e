"""Vertebra and disc instances, level names counted from S1, and endplate regions."""

from modic.levels.anatomy import Flag, SpineAnatomy, Structure, build_anatomy
from modic.levels.endplates import EndplateRegion

__all__ = ["EndplateRegion", "Flag", "SpineAnatomy", "Structure", "build_anatomy"]
