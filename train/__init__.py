"""Offline training and evaluation of the classifier (`python -m train`, `python -m train.evaluate`)."""
