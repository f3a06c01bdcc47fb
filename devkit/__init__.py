"""Helpers shared by the tests and the benchmarks (build test models, start real servers)."""
