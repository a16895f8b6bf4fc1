"""Post-processing of generated clips: frame interpolation (and more to come)."""
