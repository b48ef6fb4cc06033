"""Datasets: where they come from, how their files are read, and preprocessing."""
