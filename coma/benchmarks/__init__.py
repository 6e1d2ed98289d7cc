"""The speed and memory benchmarks behind ``tools/benchmark_*.py`` (tables in docs/benchmarks.md)."""
