"""Pixels to model input: image conventions, brain crop, preprocessing, the one scan-to-input path."""
