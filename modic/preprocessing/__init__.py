"""Bring images onto the grid and intensity scale the segmentation network expects.

:mod:`modic.preprocessing.sagittal` (torch and MONAI) makes the network's
input; :mod:`modic.preprocessing.registration` (NumPy) aligns a T2 slice on a
T1 slice. The package imports neither, so that the NumPy part stays light.
"""
