"""The input check: does an image look like a 2D brain MR slice, before any prediction."""
