"""Training-time image transforms: the recipe's augmentation, appearance changes, intensity maps."""
