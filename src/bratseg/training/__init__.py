"""Training: patch sampling, augmentation, losses, the loop, checkpoints and tracking."""
