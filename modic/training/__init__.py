"""Training of modic's models: the segmentation network (``modic train seg``), the grading models (``modic train grade``), the presence models (``modic train presence``) and the orientation check (``modic train orientation``).

Training sits above the stages and the evaluation it reuses (it runs the
pipeline to measure endplates and scores models with the evaluation metrics);
no stage imports it.
"""
