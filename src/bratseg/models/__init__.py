"""3D UNet / ResUNet family."""
