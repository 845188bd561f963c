"""Per-case preprocessing: validation, N4 bias correction, normalisation, cropping, cached arrays."""
