"""Benchmarks: `inspector bench <what>` prints medians and ratios measured in one run."""
