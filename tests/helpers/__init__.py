"""Helpers shared by the test suite: a loopback HTTP server and synthetic datasets."""
