"""Datasets in their real on-disk formats, and small generated/sample data for offline runs."""
