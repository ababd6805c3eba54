"""Reports to keep: the PDF, and the model card in a few readable lines."""
