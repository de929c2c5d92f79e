"""Vertebra, disc and S1 segmentation of sagittal slices with a MONAI network."""
