"""Readers of the labelled datasets that both evaluation and training use.

Each module reads one layout from disk (images, label maps, case lists) and
says what its labels mean in modic's classes; it knows nothing of training
samples or metrics, so that ``modic evaluate`` and ``modic train`` read the
same cases the same way.
"""
