"""The `brain-mri` command: one entry point for the app, prediction, training and evaluation."""
