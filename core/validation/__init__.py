"""Method validation: labelled sets -> per-detector error rates -> records the findings and reports cite."""
