"""Training of modic's models outside the stage packages: the orientation check (``modic train orientation``)."""
