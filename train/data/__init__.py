"""Labelled scans to training data: discover folders, crop once into a cache, de-duplicate, split, folds, batches."""
