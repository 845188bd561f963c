"""Inference: sliding-window prediction, post-processing, writing back to the original space."""
