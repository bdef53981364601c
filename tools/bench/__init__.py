"""Benchmarks: `make bench` runs them against servers started on 127.0.0.1 and prints the figures."""
