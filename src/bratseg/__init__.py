"""bratseg: reproducible BraTS brain-tumour segmentation (preprocessing, training, evaluation, report)."""

__version__ = "0.1.0"
