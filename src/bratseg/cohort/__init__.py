"""The embedded synthetic BraTS-like cohort, built on the ICBM152 2009a templates shipped with nilearn."""
