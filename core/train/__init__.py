"""Dataset preparation, training and evaluation of the learned detectors (one module each)."""
