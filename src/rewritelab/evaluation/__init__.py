"""Exact-match evaluation of a model on a dataset: fast and generate paths, breakdowns."""
