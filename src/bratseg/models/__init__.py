"""The networks behind ``model=``: the UNet family (UNet, ResUNet, Attention UNet, the 2D slice UNet) and
MONAI's SegResNet, SwinUNETR and DynUNet, all with one forward contract (:mod:`bratseg.models.base`)."""

from bratseg.models.base import SegmentationNet
from bratseg.models.registry import MODELS, build_model
from bratseg.models.unet import UNet3D

__all__ = ["MODELS", "SegmentationNet", "UNet3D", "build_model"]
