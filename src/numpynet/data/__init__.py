"""Datasets: where they come from (catalog, download), how their files are read, and preprocessing."""
