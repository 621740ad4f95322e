"""Benchmarks of mofaclaw: `python -m bench NAME`; see bench/README.md."""
