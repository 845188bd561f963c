"""3D UNet / ResUNet family."""

from bratseg.models.registry import MODELS, build_model
from bratseg.models.unet import UNet3D

__all__ = ["MODELS", "UNet3D", "build_model"]
