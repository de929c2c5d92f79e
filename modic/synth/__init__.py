"""Deterministic synthetic lumbar MRI studies for tests, the demo and training supplements.

:func:`generate_study` draws a patient (vertebrae T10..L5 and sacrum with
realistic shapes, discs, canal, muscles, abdomen), plants Modic changes at the
chosen endplates and renders sagittal T1 and T2 (and, on request, STIR, T2
fat-sat, axial T2, a localizer and a derived series) with physical contrast,
partial volume, coil bias and Rician noise. :func:`write_study` writes DICOM,
NIfTI and ``truth.json``. The same seed and config always give the same bytes.
"""

from modic.synth.anatomy import Variant
from modic.synth.config import SynthSettings, load_synth_settings
from modic.synth.lesions import ModicSpec, parse_modic
from modic.synth.study import GENERATOR_VERSION, SyntheticStudy, generate_study, to_study_images
from modic.synth.writer import available_transfer_syntaxes, write_study

__all__ = [
    "GENERATOR_VERSION",
    "ModicSpec",
    "SynthSettings",
    "SyntheticStudy",
    "Variant",
    "available_transfer_syntaxes",
    "generate_study",
    "load_synth_settings",
    "parse_modic",
    "to_study_images",
    "write_study",
]
