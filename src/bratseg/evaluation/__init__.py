"""Evaluation: BraTS metrics (Dice, IoU, HD95) and the visual report."""
