"""Whether a sagittal image is upside down: a small learned input check (``models/modic_orientation``).

:mod:`~modic.orientation.view` makes the picture the network sees,
:mod:`~modic.orientation.model` loads and runs the network,
:mod:`~modic.orientation.data` and :mod:`~modic.orientation.training` train it
(``modic train orientation``).
"""
