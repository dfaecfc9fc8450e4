"""Benchmarks: each script prints its figures and the peer measured in the same run."""
