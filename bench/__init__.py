"""The benchmark harness behind `make bench` (see docs/benchmarks.md)."""
