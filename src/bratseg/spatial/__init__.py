"""Reversible spatial transforms: preprocessing applies them, inference undoes them (hence shared)."""
