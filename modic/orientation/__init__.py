"""Whether a sagittal image is upside down: a small learned input check (``models/modic_orientation``).

:mod:`~modic.orientation.view` makes the picture the network sees,
:mod:`~modic.orientation.model` loads and runs the network,
the training code (:mod:`modic.training.orientation`) trains it
(``modic train orientation``).
"""
