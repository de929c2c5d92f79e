"""Training of modic's models from labelled datasets; above the stages, so no stage imports it."""
