"""Offline training and evaluation of the classifier (`python -m train`, `brain-mri evaluate`)."""
